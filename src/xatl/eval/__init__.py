"""Evaluation: the zero-shot suite and held-out perplexity (``evaluate``), lm-eval integration (``harness``,
``lm_tasks``) and the cost of inference (``profile``).

    from xatl.eval import evaluate_path, format_table
    results = evaluate_path("students/smol-ret", "piqa,arc_easy,lambada", donor="smollm2-135m", limit=200)
    print(format_table(results))
"""

from .lm_tasks import write_lm_eval_tasks
from .loading import load_model, model_info, weights_sha256
from .perplexity import heldout_perplexity
from .runner import evaluate, evaluate_path, format_table, read_results, relative_scores
from .suite import SUITE_TASKS, TASKS, TaskSpec, load_task, parse_tasks

__all__ = ["SUITE_TASKS", "TASKS", "TaskSpec", "evaluate", "evaluate_path", "format_table", "heldout_perplexity",
           "load_model", "load_task", "model_info", "parse_tasks", "read_results", "relative_scores",
           "weights_sha256", "write_lm_eval_tasks"]

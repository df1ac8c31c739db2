"""Evaluation: the zero-shot suite and held-out perplexity (``evaluate``), lm-eval integration (``harness``,
``lm_tasks``) and the cost of inference (``profile``).

    from xatl.eval import evaluate_path, format_table
    results = evaluate_path("students/smol-ret", "piqa,arc_easy,lambada", donor="smollm2-135m", limit=200)
    print(format_table(results))

The names import on first use, so the settings (``xatl profile --help``) load without torch.
"""

from ..utils.lazy import lazy_exports

_EXPORTS = {"write_lm_eval_tasks": "lm_tasks", "load_model": "loading", "model_info": "loading",
            "weights_sha256": "loading", "heldout_perplexity": "perplexity", "evaluate": "runner",
            "evaluate_path": "runner", "format_table": "runner", "read_results": "runner",
            "relative_scores": "runner", "SUITE_TASKS": "suite", "TASKS": "suite", "TaskSpec": "suite",
            "load_task": "suite", "parse_tasks": "suite"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

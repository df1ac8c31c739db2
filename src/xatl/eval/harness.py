"""lm-evaluation-harness integration: the ``xatl`` model and offline task YAMLs over the local benchmark files.

* ``XATLLM`` (registered as ``--model xatl``): lm-eval's ``HFLM`` after ``import xatl``, so XATL students load
  like any Hugging Face causal LM; CPU unless CUDA is available; fp32 unless ``dtype=`` says otherwise.
* :func:`xatl.eval.lm_tasks.write_lm_eval_tasks` writes ``xatl_<task>.yaml`` (tag ``xatl_suite``) reading the fetched
  ``<task>/requests.jsonl.gz`` directly; their documents are grouped by :func:`process_docs`, the same code the
  built-in scorer uses, so both score the same requests.

lm-eval 0.4.13 has no plugin discovery (its registry reads no entry points), so ``--model xatl`` exists only in a
process that imported this module. Run lm-eval through it with the same flags::

    xatl eval --write-lm-eval-tasks tasks/
    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m xatl.eval.harness --model xatl \\
        --model_args pretrained=students/smol-ret --tasks xatl_piqa --include_path tasks/ --limit 100

``xatl eval --model DIR --tasks piqa --lm-eval`` does the same in one step (tasks generated into a temporary
directory). ``lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True --include_path tasks/`` also
works for students, through the model code saved beside their weights.
"""

from __future__ import annotations

import os
import sys

import torch
from lm_eval.api.registry import model_registry
from lm_eval.models.huggingface import HFLM

import xatl.models  # noqa: F401  (registers the XATL student with the Auto classes)

from .lm_tasks import process_docs, write_lm_eval_tasks  # noqa: F401  (re-exported)
from .suite import TASKS, parse_tasks


class XATLLM(HFLM):
    """``HFLM`` that knows XATL students. Defaults: causal backend, best available device, float32."""

    def __init__(self, pretrained, device: str | None = None, dtype="float32", backend="causal", **kwargs):
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        super().__init__(pretrained=pretrained, device=device, dtype=dtype, backend=backend, **kwargs)


def register() -> None:
    """Register ``--model xatl`` with lm-eval (idempotent; done on import of this module)."""
    import lm_eval.models  # noqa: F401  (the built-in models first: lm-eval loads them only into an empty registry)

    if "xatl" not in model_registry:
        model_registry.register("xatl", target="xatl.eval.harness:XATLLM")


register()


def lm_eval_evaluate(model, tokenizer=None, tasks=None, *, include_path: str | os.PathLike, limit: int | None = None,
                     batch_size: int = 8, log_samples: bool = False, device: str | None = None,
                     dtype: str = "float32", bootstrap_iters: int = 0) -> dict:
    """Run lm-eval in this process on the generated tasks (``xatl_<task>``) and return its results dict.

    model: a loaded causal LM (with ``tokenizer``) or a model directory (loaded by ``XATLLM`` on ``device`` in
    ``dtype``). Held-out perplexity (``ppl``) has no lm-eval task and is left out. ``bootstrap_iters`` = 0 skips
    lm-eval's standard errors (fast).
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    names = [f"xatl_{n}" for n in parse_tasks(tasks) if TASKS[n].from_suite]
    if isinstance(model, (str, os.PathLike)):
        lm = XATLLM(pretrained=os.fspath(model), batch_size=batch_size, device=device, dtype=dtype)
    else:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, backend="causal")
    return simple_evaluate(model=lm, tasks=names, limit=limit, log_samples=log_samples,
                           task_manager=TaskManager(include_path=os.fspath(include_path)), num_fewshot=0,
                           bootstrap_iters=bootstrap_iters, random_seed=0, numpy_random_seed=0, torch_random_seed=0)


def lm_eval_metrics(results: dict) -> dict:
    """{task (without the ``xatl_`` prefix): {metric: value}} from lm-eval's results dict."""
    out = {}
    for task, metrics in results["results"].items():
        name = task.removeprefix("xatl_")
        out[name] = {k.split(",")[0]: v for k, v in metrics.items()
                     if "," in k and not k.split(",")[0].endswith("_stderr")}
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m xatl.eval.harness ...``: the ``lm_eval`` command line, with ``--model xatl`` registered."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()

"""The long-context tasks as ``xatl eval`` runs them: one runner and one plotter per task, imported on first use.

Each runner is ``run_X(model, tokenizer, cfg: LongContextConfig, *, progress=True) -> dict`` with keys
``settings``, ``summary``, ``results`` (raw, per sample or document) and ``documents`` (what was generated or read,
so the run can be redone); each plotter is ``plot_X(result, path)``. :func:`run_long_task` turns a runner's dict
into a task entry of the results JSON::

    {"kind": "long_context", "metrics": {flat numbers of the summary}, "settings", "summary", "results",
     "documents": N, "version": {"sha256": of the generated documents}, "generated": the documents}

``generated`` is big (long prompts): ``xatl eval --out`` writes it to a file of its own beside the scores.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math

from ...errors import ConfigError
from .config import LongContextConfig

RUNNERS = {"ppl_position": ("positions", "run_ppl_position", "plot_ppl_position"),
           "passkey": ("passkey", "run_passkey", "plot_passkey"),
           "niah": ("niah", "run_niah", "plot_niah"),
           "mqar": ("mqar", "run_mqar", "plot_mqar")}
"""Task name -> (module of ``xatl.eval.long``, runner, plotter)."""
METRIC_KEYS = {"ppl_position": ("perplexity",), "passkey": ("accuracy", "accuracy_stderr"),
               "niah": ("accuracy", "accuracy_stderr", "recall", "accuracy_by_length", "accuracy_by_length_stderr"),
               "mqar": ("accuracy", "accuracy_stderr", "accuracy_by_length", "accuracy_by_length_stderr")}
"""Summary keys whose numbers are a task's ``metrics`` (a task not listed: every number of its summary)."""
REAL_TEXT = ("niah",)
"""Tasks whose needles sit in real text: the long held-out documents of ``ppl_position`` (or ``--data``)."""


def _function(name: str, which: int):
    if name not in RUNNERS:
        raise ConfigError(f"unknown long-context task {name!r}; choose one of: {', '.join(RUNNERS)}")
    module, *functions = RUNNERS[name]
    try:
        mod = importlib.import_module(f".{module}", __package__)
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.{module}":
            raise
        raise ConfigError(f"long-context task {name!r} is not available in this build of xatl") from None
    return getattr(mod, functions[which])


def run_long_task(name: str, model, tokenizer, cfg: LongContextConfig, *, data=None, progress: bool = True) -> dict:
    """Run long-context task ``name`` -> its entry of the results (module docstring). ``data``: held-out documents
    for ``ppl_position`` and the haystack of ``niah`` (None: the sotu and pydoc validation documents)."""
    kwargs = {"data": data} if name == "ppl_position" else {}
    if name in REAL_TEXT:
        kwargs["haystack"] = haystack(tokenizer, cfg, data)
    run = _function(name, 0)(model, tokenizer, cfg, progress=progress, **kwargs)
    generated = run.get("documents")
    summary = run.get("summary") or {}
    return {"kind": "long_context", "metrics": flat_metrics(summary, METRIC_KEYS.get(name)),
            "settings": run.get("settings"), "summary": run.get("summary"), "results": run.get("results"),
            "documents": _count(generated), "version": {"sha256": json_sha256(generated)}, "generated": generated}


def haystack(tokenizer, cfg: LongContextConfig, data=None) -> list[list[int]]:
    """Real text to hide needles in: the token ids of the long held-out documents (:mod:`.documents`), without
    their prefix token."""
    from .documents import long_documents

    docs, _ = long_documents(tokenizer, cfg.max_length, cfg.documents, cfg.seed, data=data)
    return [d.ids[1:] for d in docs]


def as_run(entry: dict) -> dict:
    """A task entry (or the donor's copy of one) back in the runner's shape, for the plotters."""
    return {"settings": entry.get("settings"), "summary": entry.get("summary"), "results": entry.get("results"),
            "documents": entry.get("generated")}


def plot_long_task(name: str, entry: dict, path, donor: dict | None = None, *, model_name: str = "model",
                   donor_name: str = "donor") -> None:
    """Write task ``name``'s plot of ``entry`` to ``path`` (PNG); ``ppl_position`` draws the donor's curve beside
    the model's."""
    plot = _function(name, 1)
    if name == "ppl_position":
        plot(as_run(entry), path, as_run(donor) if donor and donor.get("summary") else None, name=model_name,
             donor_name=donor_name)
    else:
        plot(as_run(entry), path)


def flat_metrics(summary: dict, keys=None) -> dict[str, float]:
    """The finite numbers of a summary, nested keys joined by ``/`` (``{"perplexity": {"1-63": 3.2}}`` ->
    ``{"perplexity/1-63": 3.2}``); ``keys``: only these top-level keys."""
    out: dict[str, float] = {}

    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}/{k}" if path else str(k))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[path] = value

    for key, value in summary.items():
        if keys is None or key in keys:
            walk(value, str(key))
    return out


def json_sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _count(generated) -> int | None:
    if isinstance(generated, list):
        return len(generated)
    if isinstance(generated, dict):
        for key in ("documents", "samples", "prompts"):
            if isinstance(generated.get(key), list):
                return len(generated[key])
    return None

"""``evaluate``: score a causal LM on the zero-shot suite and held-out text; compare it with its donor.

Results are plain JSON-able dicts::

    {"model": {"path", "sha256", ...}, "settings": {...},
     "tasks": {"piqa": {"metrics": {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"}, "documents", "chance",
                        "version": {"variant", "file", "sha256", "documents"}, "seconds"}, ...},
     "relative_to_donor": {"piqa": {"acc": .., "acc_norm": ..}, "ppl": {"perplexity_ratio": ..}, ...}}

Relative score of an accuracy: (student - chance) / (donor - chance): 1 = as good as the donor, 0 = chance.
Perplexities are compared as the ratio student / donor (1 = as good as the donor).

The long-context tasks (``ppl_position``, ``passkey``, ``niah``, ``mqar``; :mod:`xatl.eval.long`) take their
settings from one :class:`~xatl.eval.long.LongContextConfig`; their entries hold the task's ``settings``,
``summary``, raw ``results`` and ``generated`` documents besides ``metrics`` (see :mod:`xatl.eval.long.tasks`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch

from .. import __version__
from ..errors import ConfigError, DataError
from .loading import load_model, model_info, resolve_model
from .long.config import LongContextConfig
from .perplexity import (
    DEFAULT_WINDOW,
    default_documents,
    describe_source,
    heldout_perplexity,
    read_documents,
    texts_sha256,
)
from .scoring import PairEncoder, chance, fitting_documents, resolve_max_length, score_task
from .suite import LONG_CONTEXT, TASKS, check_suite, load_task, parse_tasks, suite_dir

log = logging.getLogger(__name__)

ACCURACY_METRICS = ("acc", "acc_norm")
LONG_KEPT = ("settings", "summary")
"""What the results keep of the donor's long-context entries besides its metrics (for tables and plots)."""
RATIO_METRICS = ("perplexity", "bits_per_byte")


def evaluate(model, tokenizer, tasks=None, *, limit: int | None = None, batch_size: int = 8, data=None,
             donor_results: dict | str | os.PathLike | None = None, suite: str | os.PathLike | None = None,
             max_length: int | None = None, ppl_window: int = DEFAULT_WINDOW, ppl_stride: int | None = None,
             model_path: str | os.PathLike | None = None, log_samples: bool = False,
             long_context: LongContextConfig | None = None, progress: bool = True) -> dict:
    """Score ``model`` on ``tasks`` (names or ``"a,b"``; None = all) and return the results dict.

    limit: the first N documents of each task (and of the held-out data). data: held-out documents for ``ppl``
    (None: ``xatl.data``'s validation split; a path, list of strings or Dataset). donor_results: results of the
    donor (dict or JSON file) to report relative scores against. suite: benchmark directory (None: the fetched
    ``evalsuite``). model_path: where the model was loaded from (its weight files are hashed). long_context: the
    settings of the long-context tasks (None: the defaults; ``data`` replaces the held-out documents of
    ``ppl_position`` too).
    """
    names = parse_tasks(tasks)
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be a positive number of documents, got {limit}")
    donor = read_results(donor_results) if donor_results is not None else None
    model.eval()
    max_length = max_length or resolve_max_length(model.config, tokenizer)
    root = suite_dir(suite, progress=progress) if any(TASKS[n].from_suite for n in names) else None
    encoder = PairEncoder(tokenizer)
    long_cfg = long_context or LongContextConfig()
    results = {
        "xatl_version": __version__,
        "model": model_info(model, model_path),
        "settings": {"limit": limit, "batch_size": batch_size, "max_length": max_length,
                     "device": str(next(model.parameters()).device), "suite": str(root) if root else None,
                     "scoring": "lm-evaluation-harness 0.4.13 definitions (0-shot log-likelihood)"},
        "tasks": {},
    }
    if any(TASKS[n].kind == LONG_CONTEXT for n in names):
        results["settings"]["long_context"] = long_cfg.as_dict()
    for name in names:
        t0 = time.perf_counter()
        if TASKS[name].kind == "perplexity":
            entry = _heldout(model, tokenizer, data, limit, ppl_window, ppl_stride, batch_size, progress)
        elif TASKS[name].kind == LONG_CONTEXT:
            from .long.tasks import run_long_task

            entry = run_long_task(name, model, tokenizer, long_cfg, data=data, progress=progress)
        else:
            entry = _suite_task(model, encoder, name, root, limit, batch_size, max_length, progress, log_samples)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        results["tasks"][name] = entry
        log.info("%s: %s (%.1fs)", name, _brief(entry["metrics"]), entry["seconds"])
    if donor is not None:
        attach_donor(results, donor)
    return results


def _suite_task(model, encoder, name, root, limit, batch_size, max_length, progress, log_samples) -> dict:
    task = load_task(name, root)
    docs = task.docs[:limit] if limit else task.docs
    docs, skipped = fitting_documents(encoder, docs, max_length)
    if not docs:
        raise ConfigError(f"{name}: no document's continuation fits the model's context of {max_length} tokens; "
                          "raise --max-length (up to the model's max_position_embeddings)")
    if skipped:
        log.warning("%s: %d document(s) skipped: a continuation longer than the context of %d tokens", name,
                    skipped, max_length)
    with torch.inference_mode():
        metrics, samples = score_task(model, encoder, docs, task.spec.kind, task.delimiter, batch_size=batch_size,
                                      max_length=max_length, desc=name, progress=progress)
    entry = {"metrics": metrics, "documents": len(docs), "skipped_documents": skipped,
             "chance": chance(docs, task.spec.kind), "version": task.version}
    if log_samples:
        entry["samples"] = samples
    return entry


def _heldout(model, tokenizer, data, limit, window, stride, batch_size, progress) -> dict:
    texts, where = read_documents(default_documents() if data is None else data)
    texts = texts[:limit] if limit else texts
    with torch.inference_mode():
        metrics = heldout_perplexity(model, tokenizer, texts, window=window, stride=stride, batch_size=batch_size,
                                     progress=progress)
    version = {"data": describe_source(data), "source": where, "sha256": texts_sha256(texts),
               "window": window, "stride": stride or window,
               "method": "disjoint windows (lm-eval loglikelihood_rolling)" if not stride or stride == window
               else "sliding windows"}
    docs = metrics.pop("documents")
    return {"metrics": {k: metrics[k] for k in ("perplexity", "bits_per_byte")}, "documents": docs,
            "tokens": metrics["tokens"], "bytes": metrics["bytes"], "version": version}


def evaluate_path(path: str | os.PathLike, tasks=None, *, donor: str | os.PathLike | None = None,
                  device: str | None = "cpu", dtype: torch.dtype = torch.float32, mixer_options: dict | None = None,
                  **kwargs) -> dict:
    """Load the model at ``path`` (and the donor at ``donor``, scored by the same code and settings) and evaluate.
    ``mixer_options`` override the student's mixer options (e.g. ``{"sparse_cache": 64}``; not the donor's).

    Other keyword arguments are those of :func:`evaluate`.
    """
    where = str(resolve_model(path))                               # a missing model fails before anything loads
    donor_where = str(resolve_model(donor)) if donor is not None else None
    kwargs["suite"] = check_suite(tasks, kwargs.get("suite"))    # a missing benchmark file fails before loading
    if donor is not None and mixer_options:      # a bad override is refused before the donor is scored
        from .loading import with_mixer_options

        with_mixer_options(resolve_model(path), mixer_options)
    if donor is not None:          # the donor first, so that only one model is in memory at a time
        donor_model, donor_tok = load_model(donor, device=device, dtype=dtype)
        kwargs["donor_results"] = evaluate(donor_model, donor_tok, tasks, model_path=donor_where,
                                           **{k: v for k, v in kwargs.items() if k != "donor_results"})
        del donor_model
    model, tokenizer = load_model(path, device=device, dtype=dtype, mixer_options=mixer_options)
    return evaluate(model, tokenizer, tasks, model_path=where, **kwargs)


def read_results(source: dict | str | os.PathLike) -> dict:
    """Results dict from a dict or a JSON file written by ``xatl eval --out``."""
    if isinstance(source, dict):
        results = source
    else:
        try:
            results = json.loads(Path(source).expanduser().read_text())
        except FileNotFoundError:
            raise DataError(f"donor results {str(source)!r} do not exist; run `xatl eval --model DONOR --out "
                            "FILE.json` first, or pass --donor DIR") from None
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"donor results {str(source)!r} are not a results JSON ({type(e).__name__})") from None
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise DataError("donor results have no 'tasks'; pass a file written by `xatl eval --out`")
    return results


def _same_documents(a: dict, b: dict) -> bool:
    va, vb = a.get("version", {}), b.get("version", {})
    return a.get("documents") == b.get("documents") and va.get("sha256") == vb.get("sha256")


def relative_scores(student: dict, donor: dict) -> tuple[dict, dict]:
    """({task: {metric: relative}}, {task: why skipped}) for the tasks both results hold."""
    relative, skipped = {}, {}
    for name, s in student["tasks"].items():
        d = donor["tasks"].get(name)
        if d is None:
            skipped[name] = "not in the donor results"
            continue
        if not _same_documents(s, d):
            skipped[name] = "scored on different documents (limit or benchmark file differ)"
            continue
        if TASKS.get(name) is not None and TASKS[name].kind == LONG_CONTEXT:
            from .long.report import long_relative

            relative[name] = long_relative(s, d)
            continue
        rel, at_chance = {}, []
        for m in ACCURACY_METRICS:
            if m in s["metrics"] and m in d["metrics"]:
                c = s.get("chance", 0.0)
                gap = d["metrics"][m] - c
                # relative to the donor's margin only where it has one: > 2 standard errors above chance
                if gap > max(2 * (d["metrics"].get(f"{m}_stderr") or 0.0), 1e-12):
                    rel[m] = (s["metrics"][m] - c) / gap
                else:
                    rel[m] = None
                    at_chance.append(m)
        if at_chance:
            skipped[name] = f"the donor is within two standard errors of chance on {', '.join(at_chance)}"
        for m in RATIO_METRICS:
            if m in s["metrics"] and m in d["metrics"] and d["metrics"][m]:
                rel[f"{m}_ratio"] = s["metrics"][m] / d["metrics"][m]
        relative[name] = rel
    return relative, skipped


def attach_donor(results: dict, donor: dict) -> dict:
    """Add the donor's identity, metrics and the relative scores to ``results`` (in place)."""
    relative, skipped = relative_scores(results, donor)
    results["donor"] = {"model": donor.get("model"),
                        "tasks": {n: {"metrics": t["metrics"], "documents": t.get("documents"),
                                      **{k: t[k] for k in LONG_KEPT if k in t}}
                                  for n, t in donor["tasks"].items()}}
    results["relative_to_donor"] = relative
    if skipped:
        results["relative_skipped"] = skipped
        for name, why in skipped.items():
            log.warning("no relative score for %s: %s", name, why)
    return results


def _brief(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if not k.endswith("_stderr"))


def format_table(results: dict) -> str:
    """A plain-text table: task, metric, value (± stderr), donor value and relative score when present; then a
    table per long-context task (:func:`xatl.eval.long.report.format_long_tables`)."""
    from .long.report import format_long_tables

    long_tables = format_long_tables(results)
    short = {n: t for n, t in results["tasks"].items() if TASKS.get(n) is None or TASKS[n].kind != LONG_CONTEXT}
    if not short:
        return long_tables
    donor = results.get("donor", {}).get("tasks", {})
    relative = results.get("relative_to_donor", {})
    has_donor = bool(donor)
    header = ["task", "metric", "value", "docs"] + (["donor", "relative"] if has_donor else [])
    rows = [header]
    for name, t in short.items():
        for m, v in t["metrics"].items():
            if m.endswith("_stderr"):
                continue
            err = t["metrics"].get(f"{m}_stderr")
            row = [name, m, f"{v:.4f}" + (f" ± {err:.4f}" if err else ""), str(t.get("documents", ""))]
            if has_donor:
                dv = donor.get(name, {}).get("metrics", {}).get(m)
                rv = relative.get(name, {}).get(m, relative.get(name, {}).get(f"{m}_ratio"))
                row += [f"{dv:.4f}" if dv is not None else "-", f"{rv:.3f}" if rv is not None else "-"]
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    return f"{table}\n\n{long_tables}" if long_tables else table

"""The long-context tasks in ``xatl eval``'s results: scores relative to the donor, the printed tables, and the files
written beside ``--out`` (plots and generated documents).

Relative to the donor: a perplexity as the ratio model / donor (1 = as good as the donor, larger = worse), an
accuracy as the ratio model / donor where the donor scores above 0 (the tasks' chance is about 0).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..suite import LONG_CONTEXT, TASKS

log = logging.getLogger(__name__)

ACCURACY_WORDS = ("accuracy", "exact", "match")
"""A metric whose name holds one of these is an accuracy (compared as a ratio where the donor is above 0)."""


def is_long(name: str) -> bool:
    return name in TASKS and TASKS[name].kind == LONG_CONTEXT


def long_relative(student: dict, donor: dict) -> dict:
    """{metric: model / donor} for the metrics of one long-context task both entries hold (None where the donor's
    accuracy is 0)."""
    out = {}
    same_span = _scored(student) == _scored(donor)
    for key, s in student.get("metrics", {}).items():
        d = donor.get("metrics", {}).get(key)
        if d is None or "stderr" in key or (key.endswith("/all") and not same_span):
            continue
        if "perplexity" in key:
            out[f"{key}_ratio"] = s / d if d else None
        elif any(w in key for w in ACCURACY_WORDS):
            out[key] = s / d if d > 0 else None
    return out


def _scored(entry: dict):
    """The positions a ``ppl_position`` entry's ``all`` covers (None for the other tasks)."""
    return (entry.get("summary") or {}).get("scored_length")


def _num(v, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def human_bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def ppl_position_table(entry: dict, donor: dict | None = None) -> str:
    """Rows per position bucket: perplexity [95% interval], tokens, and the donor's perplexity and the ratio; then
    the decoding state's bytes at each length."""
    s = entry["summary"]
    labels = list(entry["settings"]["buckets"]) + ["all"]
    header = ["positions", "perplexity", "95% interval", "tokens"] + (["donor", "ratio"] if donor else [])
    rows = [header]
    for label in labels:
        ppl, ci = s["perplexity"].get(label), s["perplexity_ci95"].get(label)
        if label in s.get("skipped", {}):
            row = [label, "skipped", "(past the context limit)", "0"]
        else:
            row = [label, _num(ppl), f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-", str(s["tokens"].get(label, 0))]
        if donor:
            d = donor["summary"]["perplexity"].get(label)
            comparable = label != "all" or _scored(entry) == _scored(donor)
            row += [_num(d), _num(ppl / d if ppl and d and comparable else None, "{:.3f}")]
        rows.append(row)
    return "\n".join([_table(rows)] + state_lines(entry, donor))


def state_lines(entry: dict, donor: dict | None = None) -> list[str]:
    """``model KV cache after n tokens: 512: 1.5 MiB, ...`` for the model and the donor, where their summaries
    hold ``state_bytes``."""
    lines = []
    for who, e in (("model", entry), ("donor", donor)):
        summary = (e or {}).get("summary") or {}
        if summary.get("state_bytes"):
            skipped = summary.get("state_skipped", {})
            sizes = ", ".join(f"{n}: {'skipped' if n in skipped else human_bytes(b)}"
                              for n, b in summary["state_bytes"].items())
            lines.append(f"{who} {summary.get('state_kind', 'state')} after n tokens: {sizes}")
    return lines


def metrics_table(entry: dict, relative: dict, donor: dict | None = None) -> str:
    """Rows per metric of a long-context task: value, the donor's and the relative score."""
    rows = [["metric", "value"] + (["donor", "relative"] if donor else [])]
    metrics = entry.get("metrics", {})
    for key, v in metrics.items():
        head, _, rest = key.partition("/")
        if head.endswith("_stderr"):
            continue
        err = metrics.get(f"{head}_stderr/{rest}")
        row = [key, _num(v, "{:.4f}") + (f" ± {err:.4f}" if err else "")]
        if donor:
            rel = relative.get(key, relative.get(f"{key}_ratio"))
            row += [_num(donor.get("metrics", {}).get(key), "{:.4f}"), _num(rel, "{:.3f}")]
        rows.append(row)
    lines = ([_table(rows)] if len(rows) > 1 else ["(nothing scored)"]) + state_lines(entry, donor)
    skipped = (entry.get("summary") or {}).get("skipped") or {}
    lines += [f"skipped {key}: {why}" for key, why in skipped.items()]
    return "\n".join(lines)


def format_long_tables(results: dict) -> str:
    """One titled table per long-context task of ``results`` ("" when there is none)."""
    donors = results.get("donor", {}).get("tasks", {})
    parts = []
    for name, entry in results["tasks"].items():
        if not is_long(name):
            continue
        donor = donors.get(name)
        title = f"{name} (max length {entry['settings'].get('max_length')}, {entry.get('documents')} documents)"
        if name == "ppl_position":
            body = ppl_position_table(entry, donor)
        else:
            body = metrics_table(entry, results.get("relative_to_donor", {}).get(name, {}), donor)
        parts.append(f"{title}\n{body}")
    return "\n\n".join(parts)


def write_long_outputs(results: dict, out: str | Path) -> list[Path]:
    """Beside ``out`` (``results.json``): per long-context task ``results.<task>.png`` (its plot) and
    ``results.<task>.documents.json`` (the generated documents, moved out of ``results``, which then names the
    file). Returns the paths written."""
    from ...utils.fs import atomic_write_json
    from .tasks import plot_long_task

    out = Path(out)
    donors = results.get("donor", {}).get("tasks", {})
    written = []
    for name, entry in results["tasks"].items():
        if not is_long(name):
            continue
        stem = out.with_suffix("")
        docs_path, plot_path = Path(f"{stem}.{name}.documents.json"), Path(f"{stem}.{name}.png")
        atomic_write_json(docs_path, entry.pop("generated", None))
        entry["documents_file"] = docs_path.name
        written.append(docs_path)
        try:
            plot_long_task(name, entry, plot_path, donors.get(name),
                           model_name=_short(results.get("model")), donor_name=_short(results.get("donor", {}).get("model")))
        except Exception as e:          # noqa: BLE001  a plot must not lose the scores: said here and in the JSON
            entry["plot_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            log.warning("%s: no plot (%s)", name, entry["plot_error"])
            continue
        entry["plot_file"] = plot_path.name
        written.append(plot_path)
    return written


def save_results(results: dict, out: str | Path) -> list[Path]:
    """Write ``results`` to ``out`` as strict JSON (NaN and infinities as null), with each long-context task's plot
    and generated documents beside it (:func:`write_long_outputs`). -> the paths written beside ``out``."""
    from ...utils.fs import atomic_write_json

    extra = write_long_outputs(results, out)          # moves the generated documents out of results
    atomic_write_json(out, results)
    return extra


def _short(info: dict | None) -> str:
    path = (info or {}).get("path") or "model"
    return Path(str(path)).name or str(path)

"""The study's long-context evaluation in its summary and report: perplexity by position of the donor and each
student, retrieval accuracy by context length, the decoding state's bytes at each length, and their plots.

The results are read from ``<run>/long/<model>/results.json`` (written by the ``long/<model>`` stages,
:meth:`xatl.experiment.pipeline.Study.run_long`); the generated documents and per-model plots lie beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

RETRIEVAL = ("passkey", "niah", "mqar")


def collect_long(run_dir: Path, labels: dict[str, str]) -> dict | None:
    """{"models": {label: {task: entry}}, "settings"} of the long-context results under ``run_dir/long`` for
    ``labels`` ({model id or ``donor``: label}); None when there are none."""
    models, settings = {}, None
    for model, label in labels.items():
        path = run_dir / "long" / model / "results.json"
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        models[label] = {name: {k: entry.get(k) for k in ("metrics", "settings", "summary", "documents", "seconds",
                                                             "version")}
                         for name, entry in results["tasks"].items()}
        settings = settings or results.get("settings", {}).get("long_context")
    return {"models": models, "settings": settings} if models else None


def _ppl(entry: dict, bucket: str):
    return ((entry.get("summary") or {}).get("perplexity") or {}).get(bucket)


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 1000 else f"{v:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def ppl_rows(long: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the perplexity-by-position table: each model's perplexity per bucket, the students'
    ratio to the donor beside it (only where both scored the same documents: the same ``version.sha256``)."""
    entries = {label: m["ppl_position"] for label, m in long["models"].items() if "ppl_position" in m}
    if not entries:
        return [], []
    buckets = next(iter(entries.values()))["settings"]["buckets"]
    donor = entries.get("donor")
    rows = []
    for label, e in entries.items():
        same = donor is not None and e.get("version") == donor.get("version")           # the same documents
        cells = []
        for b in buckets:
            v, d = _ppl(e, b), _ppl(donor, b) if same else None
            ratio = f" ({v / d:.2f}x)" if v is not None and d and label != "donor" else ""
            cells.append("skipped" if b in (e["summary"].get("skipped") or {}) else _fmt(v) + ratio)
        rows.append([label] + cells)
    return ["model"] + buckets, rows


def retrieval_rows(long: dict, task: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a retrieval task: accuracy (%) ± standard error per context length (for niah and mqar:
    over all variants or pair counts)."""
    rows, lengths = [], None
    for label, m in long["models"].items():
        e = m.get(task)
        if not e:
            continue
        lengths = lengths or [str(L) for L in e["settings"]["lengths"]]
        acc, err = _by_length(task, e["summary"])
        skipped = {k.rpartition("/")[2] for k in (e["summary"].get("skipped") or {})}       # "L" or "variant/L"
        cells = [f"{100 * acc[L]:.0f} ± {100 * (err.get(L) or 0):.0f}" if L in acc
                 else "skipped" if L in skipped else "-" for L in lengths]
        rows.append([label] + cells)
    return (["model"] + [f"{L} tokens" for L in lengths], rows) if rows else ([], [])


def _by_length(task: str, summary: dict) -> tuple[dict, dict]:
    """{length: accuracy}, {length: standard error} of a retrieval summary (niah, mqar: over every variant or pair
    count)."""
    if task == "passkey":
        return {k: v for k, v in summary["accuracy"].items() if k != "all"}, summary["accuracy_stderr"]
    return summary["accuracy_by_length"], summary["accuracy_by_length_stderr"]


def state_rows(long: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: each model's decoding state (kind, bytes) after each length of the grid."""
    from ..eval.long.report import human_bytes

    rows, lengths = [], None
    for label, m in long["models"].items():
        e = m.get("ppl_position") or next((m[t] for t in RETRIEVAL if t in m), None)
        if not e:
            continue
        s = e["summary"]
        lengths = lengths or [str(L) for L in e["settings"]["lengths"]]
        sizes = s.get("state_bytes") or {}
        skipped = s.get("state_skipped") or {}
        rows.append([label, s.get("state_kind", "-")]
                    + ["skipped" if L in skipped else human_bytes(sizes.get(L)) for L in lengths])
    return (["model", "state"] + [f"after {L}" for L in lengths], rows) if rows else ([], [])


def long_figures(long: dict | None, plot_dir: Path) -> list[Path]:
    """plots/long_ppl_position.png (every model's curve) and plots/long_passkey.png (a heatmap per model)."""
    if not long:
        return []
    from ..eval.long.passkey import plot_passkey_grid
    from ..eval.long.positions import plot_ppl_curves

    out = []
    ppl = {label: m["ppl_position"] for label, m in long["models"].items() if "ppl_position" in m}
    if ppl:
        plot_ppl_curves(ppl, plot_dir / "long_ppl_position.png")
        out.append(plot_dir / "long_ppl_position.png")
    keys = {label: m["passkey"] for label, m in long["models"].items() if "passkey" in m}
    if keys:
        plot_passkey_grid(keys, plot_dir / "long_passkey.png")
        out.append(plot_dir / "long_passkey.png")
    return out


def section_long(s: dict, recipe) -> str:
    """The report's "Long context" section."""
    long = s.get("long_context")
    if not long:
        return ("Not measured (long_context.enabled is false in the recipe). `xatl eval --tasks ppl_position,passkey "
                "--max-length 8192` measures any model.")
    cfg = long["settings"] or {}
    blocks = recipe.data.block_size
    out = [f"Every model on contexts far past the {blocks} tokens the students trained on "
           f"(settings: {json.dumps(cfg)}). Documents and prompts are generated from the seed and saved beside each "
           "model's `long/<model>/results.json`."]
    header, rows = ppl_rows(long)
    if rows:
        e = next(m["ppl_position"] for m in long["models"].values() if "ppl_position" in m)
        docs, length = e["settings"]["documents_built"], e["settings"]["max_length"]
        out += ["", f"**Perplexity by token position** on {docs} held-out sotu/pydoc document{'s' * (docs != 1)} of "
                f"{length} tokens "
                f"({docs * (length - 1):,} scored positions; a model with a context limit is scored up to it, and the "
                "buckets past it are skipped; validation split, never trained on). In brackets: the ratio to the "
                "donor.", "", markdown_table(header, rows),
                "", "![perplexity by position](plots/long_ppl_position.png)"]
    for task in RETRIEVAL:
        header, rows = retrieval_rows(long, task)
        if rows:
            e = next(m[task] for m in long["models"].values() if task in m)
            what = {"passkey": f"passkey retrieval ({e['settings']['samples']} keys per length, depths "
                               f"{e['settings']['depths']} in turn; chance 1 in 90,000)",
                    "niah": f"needles in a haystack ({e['settings']['samples']} prompts per length, the four variants "
                            "in turn)",
                    "mqar": f"associative recall ({e['settings']['samples']} samples per length, pair counts "
                            f"{e['settings']['mqar_pairs']} in turn)"}[task]
            out += ["", f"**Accuracy (%) ± standard error, {what}**; prompts run through `generate()` (prefill, then "
                    "the recurrent decode path)." if task != "mqar" else
                    f"**Accuracy (%) ± standard error, {what}**, teacher-forced.", "", markdown_table(header, rows)]
            if task == "passkey":
                out += ["", "![passkey heatmaps](plots/long_passkey.png)"]
    header, rows = state_rows(long)
    if rows:
        out += ["", "**Decoding state** held after each context length (measured bytes of the cache: a student's "
                "fixed-size state stays the same; a KV cache grows with the context).", "", markdown_table(header, rows)]
    return "\n".join(out)

"""The long-context ablation table of docs/heal.md: one row per healing recipe (lever), with what it cost (tokens of
each stage, training and whole-command minutes, peak memory) and what it bought (short-context held-out perplexity ratio, the
perplexity ratio to the donor in each position bucket, passkey accuracy by length).

    python examples/long_context_ablation.py \\
        "quick start (256-token blocks)=docs/results/long/heal.json:docs/results/heal-quickstart/heal.json" \\
        "1024-token blocks + decay=runs/b1024-decay/long.json:runs/b1024-decay/heal.json:runs/b1024-decay/time.log"

Each row is LABEL=LONG_JSON:HEAL_JSON[:TIME_LOG] (the label may itself hold "="): the ``xatl eval --out`` results (ratios need --donor or
--donor-results there), the run's heal.json, and optionally the ``/usr/bin/time -v`` log of the heal for its peak
resident memory. A missing figure prints as "-".
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

BUCKETS = ("256-511", "512-1023", "1024-2047", "2048-4095", "4096-8191")
LENGTHS = ("1024", "2048", "4096", "8192")


def _from_time_log(log: Path | None) -> tuple[str, str]:
    """(wall minutes of the whole command, peak resident GiB) from a ``/usr/bin/time -v`` log, "-" when unknown."""
    if log is None or not log.is_file():
        return "-", "-"
    text = log.read_text(errors="replace")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    minutes = "-"
    if wall:
        parts = [float(x) for x in wall.group(1).split(":")]
        minutes = f"{sum(v * 60 ** i for i, v in enumerate(reversed(parts))) / 60:.1f}"
    return minutes, (f"{int(peak.group(1)) / 2**20:.1f}" if peak else "-")


def row(label: str, long_path: Path, heal_path: Path, log: Path | None) -> list[str]:
    long = json.loads(long_path.read_text())
    heal = json.loads(heal_path.read_text())
    res = heal.get("results", {})
    stages = res.get("summary", {}).get("stages", {})
    tok = "+".join(f"{stages[s]['tokens'] / 1000:.0f}k" for s in ("align", "lm") if s in stages) or "-"
    sel = heal.get("plan", {}).get("selection")
    if sel:                                      # auto:K's short attention transfer, before stage 1
        cfg = heal["config"]
        tok += f" (+{sel['align_steps'] * cfg['micro_batch_size'] * cfg['block_size'] / 1000:.0f}k choosing layers)"
    held = res.get("heldout", {}).get("ratio")
    rel = long.get("relative_to_donor", {})
    ppl = rel.get("ppl_position", {})
    pk = long.get("tasks", {}).get("passkey", {}).get("metrics", {})
    wall, peak = _from_time_log(log)
    cells = [label, str(heal["config"].get("block_size", "-")), tok, f"{res['train_seconds'] / 60:.1f}"
             if "train_seconds" in res else "-", wall, peak, f"{held:.2f}x" if held else "-"]
    cells += [f"{ppl[f'perplexity/{b}_ratio']:.2f}x" if f"perplexity/{b}_ratio" in ppl else "-" for b in BUCKETS]
    cells += [f"{100 * pk[f'accuracy/{n}']:.0f}" if f"accuracy/{n}" in pk else "-" for n in LENGTHS]
    return cells


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", nargs="+", metavar="LABEL=LONG_JSON:HEAL_JSON[:TIME_LOG]")
    args = p.parse_args()
    header = (["recipe", "block", "tokens (stage 1 + 2)", "train min", "command min", "peak GiB", "short-context ppl"]
              + [f"ppl {b}" for b in BUCKETS] + [f"passkey {n} %" for n in LENGTHS])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for spec in args.rows:
        label, _, paths = spec.rpartition("=")
        parts = [Path(x) for x in paths.split(":")]
        lines.append("| " + " | ".join(row(label, parts[0], parts[1], parts[2] if len(parts) > 2 else None)) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

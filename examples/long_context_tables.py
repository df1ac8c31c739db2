"""Markdown tables and plots of several models' long-context results (``xatl eval --tasks ... --out``), side by side:
perplexity by position with each model's ratio to the first (the donor), retrieval accuracy ± standard error by
context length, and the decoding state's bytes. The tables of docs/results.md#long-context are its output.

    python examples/long_context_tables.py donor=docs/results/long/donor.json \\
        heal=docs/results/long/heal.json --plots docs/results/long
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xatl.experiment.long_context import RETRIEVAL, long_figures, markdown_table, ppl_rows, retrieval_rows, state_rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="LABEL=FILE", help="results JSON of each model; the first is the "
                   "reference the ratios are to (label it donor)")
    p.add_argument("--plots", help="write long_ppl_position.png and long_passkey.png (every model) into this folder")
    args = p.parse_args()
    models = {}
    for spec in args.results:
        label, _, path = spec.partition("=")
        models[label] = json.loads(Path(path).read_text())["tasks"]
    first = next(iter(models))
    long = {"models": {("donor" if label == first else label): tasks for label, tasks in models.items()}}
    header, rows = ppl_rows(long)
    if rows:
        e = long["models"]["donor"].get("ppl_position") or next(m["ppl_position"] for m in long["models"].values()
                                                                 if "ppl_position" in m)
        print(f"Perplexity by position ({e['settings']['documents_built']} documents of "
              f"{e['settings']['max_length']} tokens; ratio to {first}):\n")
        print(markdown_table(header, rows) + "\n")
    for task in RETRIEVAL:
        header, rows = retrieval_rows(long, task)
        if rows:
            print(f"{task}: accuracy (%) ± standard error by context length:\n")
            print(markdown_table(header, rows) + "\n")
    header, rows = state_rows(long)
    if rows:
        print("Decoding state after n tokens:\n")
        print(markdown_table(header, rows))
    if args.plots:
        Path(args.plots).mkdir(parents=True, exist_ok=True)
        for path in long_figures(long, Path(args.plots)):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

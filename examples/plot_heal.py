"""Validation-loss curves of heal runs (from step 0), with the donor's loss on the same blocks as a line.

    python examples/plot_heal.py runs/heal-lolcats runs/heal-hybrid --donor-loss 2.833 --out docs/heal/curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--labels", nargs="+", default=None)
    p.add_argument("--donor-loss", type=float, default=None, help="the donor's validation loss on the same blocks")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run, label in zip(args.runs, args.labels or args.runs):
        rows = [json.loads(line) for line in (Path(run) / "train" / "metrics.jsonl").read_text().splitlines()]
        pts = sorted({r["step"]: r["val_loss"] for r in rows if "val_loss" in r}.items())
        plan = json.loads((Path(run) / "heal.json").read_text())["plan"]
        line, = ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=3, label=label)
        ax.axvline(plan["align_steps"], color=line.get_color(), ls=":", lw=1)
    if args.donor_loss is not None:
        ax.axhline(args.donor_loss, color="k", ls="--", lw=1, label="donor (same blocks)")
    ax.set_xlabel("optimizer step (dotted: end of attention transfer; 1,024 tokens per step)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("xatl heal, SmolLM2-135M-Instruct (Q4_1) donor, 15-minute CPU budget")
    ax.legend()
    ax.grid(alpha=0.3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What int8 and bf16 cost in quality (issue 18): held-out perplexity and zero-shot scores of quantised students
against their fp32 originals, every number from the ``xatl`` commands a user would run.

Variants: fp32, int8 (``xatl quantize``'s default: the MLPs' down projections kept in fp32), int8-all (every
linear layer in int8, ``--keep-float none``) and bf16. Models: the donor itself as a student (mixer ``softmax``: the identity conversion, so its scores are SmolLM2-135M-
Instruct's own) and a healed retention student (``xatl heal --mixer retention``; pass its directory with
--healed, or let the script heal one with --heal-budget).

    python benchmarks/quantize_quality.py --healed /tmp/heal-ret/train/final     # about 25 minutes on 1 thread
writes benchmarks/results/quantize_quality.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
XATL = [sys.executable, "-m", "xatl.cli.main"]


def xatl(*argv) -> None:
    cmd = [*XATL, *map(str, argv)]
    print("$ xatl " + " ".join(map(str, argv)), flush=True)
    subprocess.run(cmd, check=True)


def scores(path: Path) -> dict:
    return {task: dict(t["metrics"], documents=t["documents"], seconds=t.get("seconds"))
            for task, t in json.loads(path.read_text())["tasks"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/xatl-quantize-quality", help="where the students are written")
    ap.add_argument("--healed", help="a healed retention student (default: heal one with --heal-budget)")
    ap.add_argument("--heal-budget", default="8m")
    ap.add_argument("--limit", type=int, default=100, help="documents per task")
    ap.add_argument("--tasks", default="ppl,piqa,arc_easy,lambada")
    ap.add_argument("--healed-tasks", default="ppl,lambada")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", action="store_true", help="keep the evaluations already in --work (from an earlier run "
                    "of this script) and run only the missing ones")
    ap.add_argument("--out", default=str(RESULTS / "quantize_quality.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    xatl("convert", "--threads", args.threads, "--donor", "smollm2-135m", "--mixer", "softmax", "--out", work / "donor", "--overwrite")
    healed = Path(args.healed) if args.healed else None
    if healed is None:
        xatl("heal", "--threads", 2, "--donor", "smollm2-135m", "--mixer", "retention", "--out", work / "heal",
             "--budget", args.heal_budget, "--overwrite", "--no-progress")
        healed = work / "heal" / "train" / "final"
    result = {"limit": args.limit, "threads": args.threads, "healed": str(healed), "models": {}, "reused": []}
    variants = {"fp32": [], "int8": [], "int8-all": ["--keep-float", "none"], "bf16": []}
    for name, src, tasks in (("donor", work / "donor", args.tasks), ("healed-retention", healed, args.healed_tasks)):
        for variant, flags in variants.items():
            to = variant.split("-")[0]
            path = src if to == "fp32" else work / f"{name}-{variant}"
            out = work / f"{name}-{variant}.json"
            if args.reuse and out.exists():
                result["reused"].append(out.name)
            else:
                if to != "fp32":
                    xatl("quantize", "--threads", args.threads, "--model", src, "--to", to, *flags, "--out", path,
                         "--overwrite")
                dtype = ["--dtype", "bfloat16"] if to == "bf16" else []
                xatl("eval", "--threads", args.threads, "--model", path, "--tasks", tasks, "--limit", args.limit,
                     *dtype, "--out", out, "--no-progress")
            result["models"][f"{name}/{variant}"] = scores(out)
    result["seconds"] = time.time() - t0
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

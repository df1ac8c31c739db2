"""Run every benchmark with its defaults, one after another, each in its own process (`make bench`).

Each writes its JSON into benchmarks/results/; docs/benchmarks.md records the figures with the machine. Run on a
quiet machine: the timings are wall-clock.

    python benchmarks/run_all.py                    # all (tens of minutes on a 2-core CPU)
    python benchmarks/run_all.py --only mixers,decode_cost
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = {  # name: (script, arguments), as recorded in docs/benchmarks.md
    "convert": ("convert", ["--donor", "smollm2-135m", "--mixer", "retention", "--repeats", "3"]),
    "data": ("data", []),
    "mixers": ("mixers", []),
    "decode_cost": ("decode_cost", ["--donor", "smollm2-135m", "--mixers", "retention,gla,mamba,mamba2,linear,swa"]),
    "generate": ("generate", []),
    "heal": ("heal", []),
    "threads": ("threads", []),
    "train_tiny": ("train", ["--donor", "tiny", "--contexts", "512,2048", "--out", "benchmarks/results/train_tiny.json"]),
    # a SmolLM2-sized training step takes seconds on a 2-core CPU: one context, three mixers, few steps
    "train_smollm2": ("train", ["--donor", "smollm2-135m", "--mixers", "retention,gla,mamba", "--contexts", "512",
                                "--steps", "3", "--warmup", "1", "--out", "benchmarks/results/train_smollm2.json"]),
    # the long-context tasks at 8k on the donor (about 14 minutes); students: add --model LABEL=DIR
    "long_eval": ("long_eval", ["--model", "donor=smollm2-135m"]),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help=f"comma list of: {', '.join(BENCHMARKS)}")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        script, arguments = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / f"{script}.py"), *arguments]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

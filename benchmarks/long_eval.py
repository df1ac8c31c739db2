"""Cost of the long-context evaluation: wall time and peak memory of
``xatl eval --tasks ppl_position,passkey,niah,mqar --max-length 8192`` per model, at the default settings.

Each model runs as its own ``xatl eval`` process (what a user runs), timed by wall clock, its peak resident memory
read from the kernel (``wait4``'s rusage of that child); per-task seconds come from the results JSON it writes.
Target (the long-context evaluation issue): under 4 GB of peak memory at 8k tokens, batch 1, and at most 15
minutes per model on the 2-core CPU, donor and student alike.

    python benchmarks/long_eval.py --model donor=smollm2-135m --model heal=runs/heal/train/final \\
        --results-dir docs/results/long          # also keeps each model's results JSON, plots and documents
    python benchmarks/long_eval.py --model tiny=DIR --max-length 1024     # smoke run
writes benchmarks/results/long_eval.json (or --out); models already in it are kept, a model run again replaces its
row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
TASKS = "ppl_position,passkey,niah,mqar"


def run_one(label: str, model: str, args, results_dir: Path) -> dict:
    """One ``xatl eval`` process for ``model`` -> its row (wall seconds, peak RSS, per-task seconds, settings)."""
    out = results_dir / f"{label}.json"
    cmd = [sys.executable, "-m", "xatl.cli.main", "eval", "--model", model, "--tasks", args.tasks,
           "--max-length", str(args.max_length), "--out", str(out), "--no-progress", *args.eval_args]
    if args.donor_results and label != args.donor_label:
        cmd[cmd.index("--out"):cmd.index("--out")] = ["--donor-results", args.donor_results]
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"xatl eval of {label} exited {code}")
    res = json.loads(out.read_text())
    return {"model": label, "path": model, "command": "xatl " + " ".join(cmd[3:]), "wall_s": round(seconds, 1),
            "wall_min": round(seconds / 60, 2), "peak_rss_gb": round(usage.ru_maxrss / 1e6, 3),
            "task_seconds": {n: t.get("seconds") for n, t in res["tasks"].items()},
            "settings": res.get("settings", {}).get("long_context"), "results": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                   help="a model to evaluate (repeatable): label=directory or asset name")
    p.add_argument("--tasks", default=TASKS)
    p.add_argument("--max-length", type=int, default=8192)
    p.add_argument("--donor-results", help="results JSON of the donor: every other model is scored relative to it")
    p.add_argument("--donor-label", default="donor", help="the label whose run is the donor's (default: donor)")
    p.add_argument("--results-dir", help="keep each model's results (LABEL.json, plots, documents) here "
                   "(default: a temporary folder)")
    p.add_argument("--out", default=str(RESULTS / "long_eval.json"))
    p.add_argument("eval_args", nargs="*", help="further xatl eval flags, after --")
    args = p.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from xatl.experiment.sysinfo import describe_machine, machine

    keep = Path(args.results_dir) if args.results_dir else Path(tempfile.mkdtemp(prefix="xatl-long-"))
    keep.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    rows = {r["model"]: r for r in previous.get("rows", [])}
    for spec in args.model:
        label, _, path = spec.partition("=")
        rows[label] = run_one(label, path or label, args, keep)
        print(json.dumps(rows[label]), flush=True)
    info = machine()
    report = {"benchmark": "long_eval", "tasks": args.tasks, "max_length": args.max_length,
              "machine": describe_machine(info), "machine_info": info, "rows": list(rows.values())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of `xatl convert` (load, transfer, save) against the floor of one donor load plus one save.

Each measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to that job alone.

    python benchmarks/convert.py --donor smollm2-135m --mixer retention
writes benchmarks/results/convert.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

JOBS = {
    # the floor: load the donor and save it once, nothing else
    "load+save": """
import time, torch, xatl, sys
from xatl.donors.load import load_donor, resolve_source
t0 = time.perf_counter(); m = load_donor(resolve_source(sys.argv[1])); t1 = time.perf_counter()
m.save_pretrained(sys.argv[2]); t2 = time.perf_counter()
print({"load": t1 - t0, "save": t2 - t1})
""",
    "convert": """
import time, xatl, sys
r = xatl.convert(sys.argv[1], sys.argv[2], mixer=sys.argv[3])
print(r.seconds)
""",
}


def run_job(name: str, donor: str, mixer: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        code = JOBS[name] + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, donor, str(Path(tmp) / "out"), mixer],
                              capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        lines = proc.stdout.strip().splitlines()
        return {"seconds": eval(lines[-2]), "wall_s": wall, "peak_rss_mib": int(lines[-1]) / 1024}   # noqa: S307


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--donor", default="smollm2-135m")
    ap.add_argument("--mixer", default="retention")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import xatl  # noqa: F401  (fetches the donor asset first if needed, outside the timed jobs)
    from xatl.donors.load import resolve_source
    resolve_source(args.donor)
    out = {"donor": args.donor, "mixer": args.mixer, "machine": {"cpu": platform.processor() or platform.machine(),
           "cores": __import__("os").cpu_count(), "python": platform.python_version()}, "runs": {}}
    for name in JOBS:
        runs = [run_job(name, args.donor, args.mixer) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["wall_s"])
        out["runs"][name] = {"best": best, "all": runs}
        print(f"{name:10s} wall {best['wall_s']:.1f}s  peak RSS {best['peak_rss_mib']:.0f} MiB  {best['seconds']}")
    floor, conv = out["runs"]["load+save"]["best"], out["runs"]["convert"]["best"]
    out["convert_over_floor"] = {"wall": conv["wall_s"] / floor["wall_s"],
                                 "peak_rss": conv["peak_rss_mib"] / floor["peak_rss_mib"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "convert.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out["convert_over_floor"]))


if __name__ == "__main__":
    main()

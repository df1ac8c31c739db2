"""Planned memory of converting real 1B-70B donors (meta device: nothing downloaded or allocated).

For each donor config of ``tests/transfer/big_configs.py`` and each mixer, the parameters of donor and student and
what ``xatl convert`` holds at its peak, in bf16 and fp32 (the dtype ``xatl convert`` loads donors in).

    python benchmarks/transfer_plans.py [--mixers retention gla mamba2]
writes benchmarks/results/transfer_plans.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "transfer"))


def main() -> None:
    from big_configs import BIG_CONFIGS, big_config

    from xatl.transfer.plan import plan_transfer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mixers", nargs="+", default=["softmax", "retention", "gla", "mamba2"])
    args = ap.parse_args()
    rows = []
    for name in BIG_CONFIGS:
        config = big_config(name)
        for mixer in args.mixers:
            t0 = time.perf_counter()
            plan = plan_transfer(config, mixer=mixer, dtype=torch.float32)
            s = plan.report.summary()
            rows.append({"donor": name, "mixer": mixer, "seconds": time.perf_counter() - t0,
                         "donor_parameters": plan.donor_bytes // 4, "student_parameters": s["student_parameters"],
                         "copied_fraction": s["copied_fraction"],
                         "fp32": plan.memory(), "bf16_convert_peak_gib": plan.peak_bytes / 2 / 1024**3})
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfer_plans.json").write_text(json.dumps(rows, indent=1))
    print("| donor | mixer | donor params | student params | copied | xatl convert peak (fp32) | (bf16) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['donor']} | {r['mixer']} | {r['donor_parameters'] / 1e9:.2f}B | "
              f"{r['student_parameters'] / 1e9:.2f}B | {r['copied_fraction']:.1%} | "
              f"{r['fp32']['convert_peak_gib']:.1f} GiB | {r['bf16_convert_peak_gib']:.1f} GiB |")


if __name__ == "__main__":
    main()

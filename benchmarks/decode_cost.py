"""Decode cost against context length: the donor (softmax attention + KV cache) vs its LCI students.

Per-token decode latency (median of --steps single-token steps with the cache) and cache memory after prefilling
512, 4096 and 16384 random tokens, for the donor and one student per mixer. Students are built from the donor's
config with random weights (the cost of a forward does not depend on the values); --student DIR profiles saved
students as well. Targets checked (issue 6):

* student latency flat: latency(max context) / latency(min context) <= 1.15;
* at the largest context the student is >= 2x faster per token than the donor;
* student state memory < 5% of the donor's KV cache at the largest context.

    python benchmarks/decode_cost.py --donor smollm2-135m --mixers retention,gla,mamba
    python benchmarks/decode_cost.py --donor /tmp/tiny-donor --contexts 16,64 --steps 2   # smoke run
writes benchmarks/results/decode_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def _ints(text: str) -> list[int]:
    return sorted({int(t) for t in text.split(",") if t.strip()})


def build_students(donor, mixers: list[str], dtype: torch.dtype) -> tuple[dict, dict]:
    """({name: student with random weights}, {mixer: why skipped})."""
    import xatl
    from xatl.errors import XATLError

    students, skipped = {}, {}
    for mixer in mixers:
        try:
            cfg = xatl.student_config(donor.config, mixer=mixer)
        except XATLError as e:
            skipped[mixer] = str(e)
            continue
        torch.manual_seed(0)
        students[f"student-{mixer}"] = xatl.XATLForCausalLM(cfg).to(dtype=dtype, device=donor.device).eval()
    return students, skipped


def checks(donor: dict, student: dict) -> dict:
    """The three targets, measured and judged, at the smallest and largest context both profiles reached."""
    d = {p["context"]: p for p in donor["points"] if not p["error"]}
    s = {p["context"]: p for p in student["points"] if not p["error"]}
    common = sorted(set(d) & set(s))
    if len(common) < 2:
        return {"error": "fewer than two contexts measured for both"}
    lo, hi = common[0], common[-1]
    flat = s[hi]["decode_ms_per_token"] / s[lo]["decode_ms_per_token"]
    speedup = d[hi]["decode_ms_per_token"] / s[hi]["decode_ms_per_token"]
    memory = s[hi]["cache_bytes"] / d[hi]["cache_bytes"] if d[hi]["cache_bytes"] else None
    return {"contexts": [lo, hi],
            "latency_growth": flat, "flat_within_15pct": flat <= 1.15,
            "speedup_vs_donor": speedup, "at_least_2x_faster": speedup >= 2.0,
            "state_over_kv_cache": memory, "state_under_5pct": memory is not None and memory < 0.05}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--donor", default="smollm2-135m", help="donor directory, .gguf or fetched asset name")
    ap.add_argument("--mixers", default="retention,gla,mamba", help="students to build (unknown mixers are skipped)")
    ap.add_argument("--student", action="append", default=[], metavar="DIR", help="also profile this saved student")
    ap.add_argument("--contexts", type=_ints, default=[512, 4096, 16384])
    ap.add_argument("--steps", type=int, default=32, help="timed decode steps per context")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--prefill-chunk", type=int, default=2048)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=RESULTS / "decode_cost.json")
    args = ap.parse_args()

    from xatl.eval.loading import load_model
    from xatl.eval.profile import ProfileConfig, format_profile_table, profile_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    dtype = getattr(torch, args.dtype)
    cfg = ProfileConfig(contexts=args.contexts, decode_steps=args.steps, warmup_steps=args.warmup,
                        prefill_chunk=args.prefill_chunk)
    donor, _ = load_model(args.donor, device=args.device, dtype=dtype)
    students, skipped = build_students(donor, [m.strip() for m in args.mixers.split(",") if m.strip()], dtype)
    profiles = [dict(profile_model(donor, cfg, name="donor"), role="donor", path=str(args.donor))]
    for name, model in students.items():
        profiles.append(dict(profile_model(model, cfg, name=name), role="student", mixer=model.config.mixer))
        del model
    students.clear()
    for path in args.student:
        model, _ = load_model(path, device=args.device, dtype=dtype)
        profiles.append(dict(profile_model(model, cfg, name=Path(path).name), role="student", path=path))
        del model
    print(format_profile_table(profiles))
    result = {
        "settings": {**vars(cfg), "dtype": args.dtype, "threads": torch.get_num_threads()},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "device": profiles[0]["device"], "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "profiles": profiles,
        "skipped_mixers": skipped,
        "checks": {p["name"]: checks(profiles[0], p) for p in profiles[1:]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, c in result["checks"].items():
        print(f"{name}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()))
    if skipped:
        print("skipped mixers: " + "; ".join(f"{m} ({why})" for m, why in skipped.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

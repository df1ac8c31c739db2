"""Healing throughput: stage 1 (attention transfer) against full training of the same student.

Tokens/s, on random token ids of the run's batch shape (speed does not depend on the values), of
1. an attention-transfer step: one donor forward pass (the trunk), every LCI mixer run on the donor's own mixer
   inputs, the per-layer error, backward through the mixers only;
2. a full training step of the same student: forward, next-token loss, backward through every layer, every
   weight trainable (the plain XATL recipe once unfrozen);
3. the end-to-end heal step (2) plus distillation from the donor's logits.
Target (the heal issue): (1) at least 2x the tokens/s of (2). Median of --steps timed steps after one warm-up.

    python benchmarks/heal.py                                  # SmolLM2-135M, lolcats, 4 x 256 tokens
    python benchmarks/heal.py --donor tiny --steps 2           # smoke run
    python benchmarks/heal.py --batch 1 --context 1024 --heal-options   # heal's shape and mixer options
writes benchmarks/results/heal.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from xatl.cli.convert import parse_option

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--donor", default="smollm2-135m", help="donor (asset name / directory) or `tiny`")
    p.add_argument("--mixer", default="lolcats")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--mixer-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the mixer (repeatable), e.g. sinks=0")
    p.add_argument("--heal-options", action="store_true", help="start from the mixer options `xatl heal` adds "
                   "(xatl.heal.config.long_context_options); --mixer-option overrides them")
    p.add_argument("--out", default=str(RESULTS / "heal.json"))
    args = p.parse_args(argv)

    import sys

    from transformers import AutoModelForCausalLM

    import xatl
    from xatl.heal.config import long_context_options
    from xatl.heal.run import median_seconds, step_functions
    from xatl.train.params import COPIED, build_plan
    from xatl.transfer import transfer

    sys.path.insert(0, str(Path(__file__).parent))
    from train import donor_config

    torch.manual_seed(0)
    config = donor_config(args.donor)
    donor = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval().requires_grad_(False)
    options = (long_context_options(args.mixer, args.context, dict(args.mixer_option)) if args.heal_options
               else dict(args.mixer_option))
    student, report = transfer(donor, xatl.student_config(config, mixer=args.mixer, mixer_options=options), "all",
                               consume_donor=False)
    student.train()
    ids = torch.randint(0, config.vocab_size, (args.batch, args.context))
    fresh = [p for _, p in build_plan(student, report, COPIED).align]              # what stage 1 trains
    steps = step_functions(student, donor, ids, fresh, kd_temperature=1.0)
    tokens = args.batch * args.context
    seconds = {"attention_transfer": median_seconds(steps["align"], args.steps),
               "full_training": median_seconds(steps["lm"], args.steps),
               "full_training_kd": median_seconds(steps["lm_kd"], args.steps)}
    rates = {k: tokens / v for k, v in seconds.items()}
    result = {"donor": args.donor, "mixer": args.mixer, "mixer_options": options, "batch": args.batch, "context": args.context,
              "steps": args.steps, "step_s": seconds, "tokens_per_s": rates,
              "transfer_over_full": rates["attention_transfer"] / rates["full_training"],
              "transfer_over_full_kd": rates["attention_transfer"] / rates["full_training_kd"], "target": 2.0,
              "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for k, v in rates.items():
        print(f"{k:20s} {v:8.1f} tokens/s ({seconds[k]:.2f} s/step)")
    print(f"attention transfer / full training: {result['transfer_over_full']:.2f}x (target >= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

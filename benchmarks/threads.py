"""Training throughput against torch's thread count and OpenMP wait policy, on a quiet machine and beside one busy
process (the situation of a shared 2-core box).

Each setting runs in a fresh process (OMP_WAIT_POLICY is read when torch loads): a Llama-style model with xatl's
``lolcats`` student architecture (random weights; speed does not depend on them), AdamW, forward + next-token
loss + backward + step on --batch x --context random tokens; median seconds over --steps steps after a warm-up.
"busy" = one other process for the whole measurement (started before, stopped after): ``python`` spins one
core in pure Python; ``torch`` runs matrix products on torch's default threads and wait policy (another heavy
job, as when two trainings share the machine).

    python benchmarks/threads.py                       # writes benchmarks/results/threads.json
    python benchmarks/threads.py --steps 2 --hidden 64 # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SETTINGS = [  # (label, threads, OMP_WAIT_POLICY or None = unset)
    ("1 thread", 1, None),
    ("2 threads, wait policy unset (torch default)", 2, None),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, "PASSIVE"),
]

WORKER = r"""
import json, statistics, sys, time, torch
import xatl
from transformers import LlamaConfig
threads, hidden, layers, batch, context, steps = map(int, sys.argv[1:7])
torch.set_num_threads(threads)
torch.manual_seed(0)
donor = LlamaConfig(vocab_size=8192, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                    intermediate_size=hidden * 3, max_position_embeddings=4096)
model = xatl.XATLForCausalLM(xatl.student_config(donor, mixer="lolcats")).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(0, 8192, (batch, context))
times = []
for i in range(steps + 1):
    t = time.perf_counter()
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step(); opt.zero_grad()
    times.append(time.perf_counter() - t)
s = statistics.median(times[1:])
print(json.dumps({"threads": torch.get_num_threads(), "step_s": s, "tokens_per_s": batch * context / s}))
"""


HOGS = {
    "python": "while True: pass",
    "torch": "import torch\na = torch.randn(512, 512)\nwhile True: a = (a @ a).tanh()",
}


def measure(threads: int, policy: str | None, args) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, "-c", WORKER, str(threads), str(args.hidden), str(args.layers), str(args.batch),
           str(args.context), str(args.steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--out", default=str(RESULTS / "threads.json"))
    args = p.parse_args(argv)
    rows = []
    for busy in (None, *HOGS):
        for label, threads, policy in SETTINGS:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
            hog = subprocess.Popen([sys.executable, "-c", HOGS[busy]], env=env) if busy else None
            try:
                time.sleep(2.0 if busy else 0.0)
                r = measure(threads, policy, args)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            rows.append({"setting": label, "omp_wait_policy": policy, "busy_process": busy, **r})
            print(f"{busy or 'quiet':7s} {label:48s} {r['tokens_per_s']:8.0f} tok/s  ({r['step_s']:.3f} s/step)",
                  flush=True)
    result = {"benchmark": "threads", "model": {"hidden": args.hidden, "layers": args.layers, "mixer": "lolcats",
                                                "vocab": 8192}, "batch": args.batch, "context": args.context,
              "steps": args.steps, "cores": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "python": platform.python_version(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

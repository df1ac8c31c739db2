"""Training throughput: each mixer's student against the donor-shaped Transformer, and the training loop's overhead.

1. Tokens/s of a plain training step (forward, next-token loss, backward, clipping, AdamW) for the donor (its own
   Hugging Face model, softmax attention) and one student per mixer with the donor's skeleton, at each context.
   Weights are random (speed does not depend on the values); median over --steps steps after --warmup steps.
2. The overhead of ``xatl.train.train`` itself: its median wall time per step (from metrics.jsonl, so data
   loading, LR schedule, the NaN check, metrics and the progress bar included; checkpoints and evaluation off)
   against the plain step of (1) for the same model, batch and context. Target: under 5%.

    python benchmarks/train.py --donor smollm2-135m --contexts 512,2048              # SmolLM2-sized
    python benchmarks/train.py --donor tiny --contexts 512,2048                      # tiny Llama (4 x 256)
    python benchmarks/train.py --donor tiny --contexts 32,64 --steps 2 --warmup 1    # smoke run
writes benchmarks/results/train.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def donor_config(name: str):
    """The donor's config: ``tiny`` (a 4-layer, 256-wide Llama), or a model directory / fetched asset name."""
    from transformers import LlamaConfig

    if name == "tiny":
        return LlamaConfig(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                           tie_word_embeddings=True)
    from xatl.donors.load import load_donor_config, resolve_source

    return load_donor_config(resolve_source(name))


def build_models(config, mixers: list[str]) -> dict:
    """{label: model with random weights}: the donor and one student per mixer (skipped ones: {label: reason})."""
    from transformers import AutoModelForCausalLM

    import xatl
    from xatl.errors import XATLError

    torch.manual_seed(0)
    models = {"donor": AutoModelForCausalLM.from_config(config, dtype=torch.float32)}
    for mixer in mixers:
        try:
            models[f"student-{mixer}"] = xatl.XATLForCausalLM(xatl.student_config(config, mixer=mixer))
        except XATLError as e:
            models[f"student-{mixer}"] = f"skipped: {e}"
    return models


def plain_steps(model, batch: int, context: int, steps: int, warmup: int, device, bf16: bool) -> list[float]:
    """Seconds of each timed plain training step (forward + loss + backward + clip + AdamW)."""
    from xatl.train.teacher import lm_loss

    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        ids = torch.randint(0, model.config.vocab_size, (batch, context), generator=g).to(device)
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, use_cache=False).logits
        lm_loss(logits, ids).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.to("cpu")
    del opt
    return times


def trainer_steps(model, batch: int, context: int, steps: int, warmup: int, bf16: bool) -> list[float]:
    """Wall seconds per step of ``xatl.train.train`` on random blocks (from the metrics' cumulative wall)."""
    from datasets import Dataset

    from xatl.train import TrainConfig, train
    from xatl.train.metrics import read_metrics

    n = warmup + steps
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (n * batch, context), generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp) / "model")
        cfg = TrainConfig(model=str(Path(tmp) / "model"), out_dir=str(Path(tmp) / "run"), max_steps=n,
                          micro_batch_size=batch, lr=1e-4, warmup_steps=0, freeze="none", unfreeze="never",
                          eval_every=0, save_every=0, log_every=1, tensorboard=False, bf16=bf16, resume=False)
        train(cfg, Dataset.from_dict({"input_ids": ids.tolist()}), progress=True)
        walls = [r["wall"] for r in read_metrics(Path(tmp) / "run" / "metrics.jsonl")]
    deltas = [b - a for a, b in zip([0.0] + walls, walls)]     # the first one includes building the optimizer
    return deltas[warmup:]


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(models: dict, contexts: list[int], args, device) -> list[dict]:
    rows = []
    for label, model in models.items():
        for ctx in contexts:
            row = {"model": label, "context": ctx, "batch": args.batch_size}
            if isinstance(model, str):
                rows.append({**row, "skipped": model})
                continue
            try:
                times = plain_steps(model, args.batch_size, ctx, args.steps, args.warmup, device, args.bf16)
            except (RuntimeError, MemoryError) as e:          # out of memory, context beyond the positions
                rows.append({**row, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
                continue
            med = statistics.median(times)
            rows.append({**row, "step_s_median": med, "step_s": times,
                         "tokens_per_s": args.batch_size * ctx / med,
                         "parameters": sum(p.numel() for p in model.parameters())})
            print(f"{label:>18s}  ctx {ctx:5d}: {rows[-1]['tokens_per_s']:10,.0f} tok/s  ({med:.3f} s/step)",
                  flush=True)
    return rows


def relative(rows: list[dict]) -> dict:
    """{mixer: {context: student tokens/s / donor tokens/s}}."""
    donor = {r["context"]: r["tokens_per_s"] for r in rows if r["model"] == "donor" and "tokens_per_s" in r}
    out: dict = {}
    for r in rows:
        if r["model"].startswith("student-") and "tokens_per_s" in r and r["context"] in donor:
            out.setdefault(r["model"][8:], {})[r["context"]] = r["tokens_per_s"] / donor[r["context"]]
    return out


def overhead(models: dict, rows: list[dict], args) -> dict:
    label = args.overhead_model if args.overhead_model in models else next(
        (k for k, v in models.items() if k.startswith("student-") and not isinstance(v, str)), "donor")
    ctx = min(int(c) for c in args.contexts.split(","))
    plain = next(r for r in rows if r["model"] == label and r["context"] == ctx)
    if "step_s_median" not in plain:
        return {"model": label, "context": ctx, "skipped": plain.get("skipped")}
    steps = trainer_steps(models[label], args.batch_size, ctx, args.steps, args.warmup, args.bf16)
    med = statistics.median(steps)
    return {"model": label, "context": ctx, "batch": args.batch_size, "plain_step_s": plain["step_s_median"],
            "trainer_step_s": med, "trainer_step_s_all": steps,
            "overhead_fraction": med / plain["step_s_median"] - 1.0, "target": 0.05}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--donor", default="smollm2-135m", help="tiny, a model directory or a fetched asset name")
    ap.add_argument("--mixers", default="all", help="comma-separated mixers (default: every registered LCI mixer)")
    ap.add_argument("--contexts", default="512,2048")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (both the plain step and the trainer)")
    ap.add_argument("--overhead-model", default=None, help="model label for the loop-overhead measurement "
                    "(default: the first student)")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "train.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import xatl

    mixers = [m for m in xatl.MIXERS if m != "softmax"] if args.mixers == "all" else args.mixers.split(",")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    contexts = sorted({int(c) for c in args.contexts.split(",")})
    models = build_models(donor_config(args.donor), mixers)
    rows = measure(models, contexts, args, device)
    result = {"donor": args.donor, "mixers": mixers, "contexts": contexts, "batch_size": args.batch_size,
              "steps": args.steps, "warmup": args.warmup, "bf16": args.bf16, "device": str(device),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
              "results": rows, "student_over_donor": relative(rows)}
    if not args.no_overhead:
        result["loop_overhead"] = overhead(models, rows, args)
        o = result["loop_overhead"]
        if "overhead_fraction" in o:
            print(f"loop overhead ({o['model']}, ctx {o['context']}): {o['overhead_fraction']:+.1%} "
                  f"({o['trainer_step_s']:.4f} vs {o['plain_step_s']:.4f} s/step; target < 5%)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

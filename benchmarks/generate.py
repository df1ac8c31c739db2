"""generate() throughput: a SmolLM2-sized retention student vs the donor-shaped Llama (KV cache) at a long context,
and the overhead of transformers' generate() over a bare loop of the student's recurrent steps.

For each model and batch size: prefill --context random tokens, then greedily decode --new-tokens tokens.

* prefill_s: from the generate() call to its first token (the prompt once, one token picked);
* decode_tokens_per_s: batch * (new_tokens - 1) / the time of the remaining steps, in the same generate() call;
* bare_decode_tokens_per_s: the same steps as a plain loop ``model(token, cache=cache)`` + argmax;
* generate_overhead: decode time through generate() / bare decode time - 1 (target < 10%).

Weights are random (the cost of a forward does not depend on their values); the geometry is SmolLM2-135M's
(hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536, vocab 49152), or a tiny one with --tiny.

    python benchmarks/generate.py                                        # context 4096, batch 1 and 8
    python benchmarks/generate.py --device cuda --dtype bfloat16
    python benchmarks/generate.py --tiny --context 64 --new-tokens 8 --repeats 1   # smoke run
writes benchmarks/results/generate.json (or --out).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True,
               rope_parameters={"rope_type": "default", "rope_theta": 100000.0})
TINY = dict(SMOLLM2, vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2)


def _ints(text: str) -> list[int]:
    return sorted({int(t) for t in text.split(",") if t.strip()})


def build_models(geometry: dict, mixer: str, device, dtype) -> dict:
    """{"donor": the Llama, "student-<mixer>": its student}, random weights, no EOS (every run is full length)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    import xatl

    cfg = LlamaConfig(**geometry, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    donor = LlamaForCausalLM(cfg)
    student = xatl.XATLForCausalLM(xatl.student_config(cfg, mixer=mixer))
    return {name: m.to(device=device, dtype=dtype).eval() for name, m in (("donor", donor),
                                                                           (f"student-{mixer}", student))}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """A stopping criterion that never stops: it notes the time after every generated token (the first one right
    after the prefill), so prefill and decode are timed inside one generate() call."""

    def __init__(self, device):
        self.device, self.times = device, []

    def __call__(self, input_ids, scores, **kwargs):
        _sync(self.device)
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def timed_generate(model, ids: torch.Tensor, new_tokens: int) -> tuple[float, float]:
    """(prefill seconds incl. the first token, seconds of the new_tokens - 1 decode steps) of one generate()."""
    from transformers import StoppingCriteriaList

    clock = StepClock(ids.device)
    _sync(ids.device)
    start = time.perf_counter()
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                         stopping_criteria=StoppingCriteriaList([clock]))
    assert out.shape[1] == ids.shape[1] + new_tokens, out.shape
    return clock.times[0] - start, clock.times[-1] - clock.times[0]


@torch.inference_mode()
def bare_decode_seconds(model, ids: torch.Tensor, steps: int) -> float:
    """Seconds of ``steps`` greedy one-token steps with the cache after a prefill of ``ids`` (prefill not timed)."""
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    cache, token = out.cache, out.logits[:, -1:].argmax(-1)
    _sync(ids.device)
    t = time.perf_counter()
    for _ in range(steps):
        out = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1:].argmax(-1)
    _sync(ids.device)
    return time.perf_counter() - t


def cache_bytes(model, ids: torch.Tensor, new_tokens: int) -> int:
    """Bytes of the decoding cache at the end of a generate() call."""
    from xatl.generation.text import cache_nbytes, new_cache

    cache = new_cache(model)
    model.generate(ids, max_new_tokens=new_tokens, do_sample=False, cache=cache)
    return cache_nbytes(cache)


def measure(model, batch: int, context: int, new_tokens: int, repeats: int) -> dict:
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(batch)
    ids = torch.randint(0, model.config.vocab_size, (batch, context), generator=g).to(device)
    timed_generate(model, ids, 2)                                           # warm-up
    runs = [timed_generate(model, ids, new_tokens) for _ in range(repeats)]
    prefill = statistics.median(r[0] for r in runs)
    decode = statistics.median(r[1] for r in runs)
    bare = statistics.median(bare_decode_seconds(model, ids, new_tokens - 1) for _ in range(repeats))
    steps = batch * (new_tokens - 1)
    return {"batch": batch, "context": context, "new_tokens": new_tokens, "prefill_s": prefill, "decode_s": decode,
            "decode_tokens_per_s": steps / decode, "bare_decode_s": bare, "bare_decode_tokens_per_s": steps / bare,
            "generate_overhead": decode / bare - 1, "cache_bytes": cache_bytes(model, ids, new_tokens)}


def summarise(rows: list[dict], student: str) -> dict:
    """Per batch: student vs donor decode speed and memory; the generate() overhead against its 10% target."""
    out = {}
    for b in sorted({r["batch"] for r in rows}):
        d = next(r for r in rows if r["model"] == "donor" and r["batch"] == b)
        s = next(r for r in rows if r["model"] == student and r["batch"] == b)
        out[f"batch_{b}"] = {
            "decode_speedup_vs_donor": s["decode_tokens_per_s"] / d["decode_tokens_per_s"],
            "cache_bytes_student_over_donor": s["cache_bytes"] / d["cache_bytes"] if d["cache_bytes"] else None,
            "student_generate_overhead": s["generate_overhead"],
            "overhead_under_10pct": s["generate_overhead"] < 0.10,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixer", default="retention", help="mixer of the student (default retention)")
    ap.add_argument("--context", type=int, default=4096, help="prompt tokens before decoding (default 4096)")
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens decoded per run (default 64)")
    ap.add_argument("--batch-sizes", type=_ints, default=[1, 8], metavar="B1,B2", help="default 1,8")
    ap.add_argument("--repeats", type=int, default=3, help="timed generate() runs per point; medians are kept")
    ap.add_argument("--tiny", action="store_true", help="a tiny geometry instead of SmolLM2's (smoke runs)")
    ap.add_argument("--device", default="auto", help="cpu, cuda ... (default: cuda if available)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=RESULTS / "generate.json")
    args = ap.parse_args()
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2 (the decode rate needs at least one step after the prefill)")

    from xatl.eval.loading import pick_device
    from xatl.utils.fs import atomic_write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    models = build_models(TINY if args.tiny else SMOLLM2, args.mixer, device, getattr(torch, args.dtype))
    rows = []
    for name, model in models.items():
        for batch in args.batch_sizes:
            row = dict(model=name, **measure(model, batch, args.context, args.new_tokens, args.repeats))
            rows.append(row)
            print(f"{name:>20} batch {batch}: prefill {row['prefill_s']:.3f} s, decode "
                  f"{row['decode_tokens_per_s']:.1f} tok/s (bare loop {row['bare_decode_tokens_per_s']:.1f}, "
                  f"overhead {100 * row['generate_overhead']:+.1f}%), cache {row['cache_bytes'] / 2**20:.2f} MiB")
    student = f"student-{args.mixer}"
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "geometry": TINY if args.tiny else SMOLLM2,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "results": rows,
        "summary": summarise(rows, student),
    }
    atomic_write_json(args.out, result)
    for key, s in result["summary"].items():
        print(f"{key}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

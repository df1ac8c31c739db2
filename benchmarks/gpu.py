"""The prepared GPU benchmark of issue 14 (``make bench-gpu``): one run, at most 8 minutes on one GPU, one JSON.

SmolLM2-135M-shaped models with random weights (the real GGUF does not travel to a device; a step's cost does not
depend on the values). Sections, in order, each skipped (and named in ``skipped``) when the time budget runs out:

* parity: fla's kernels against xatl's PyTorch forms (``xatl.ops.parity``) on CUDA, fp32 and bf16 inputs:
  outputs, final states and every gradient, initial state included;
* kernels: each mixer's forward + backward (bf16, one layer's mixer, kernels="fla") against flash-linear-attention's
  own layer of the same width and heads, and the ratio (target: xatl within 1.2x of fla);
* train: training tokens/s (forward + backward + AdamW, bf16 autocast, fp32 master weights, as ``xatl train``)
  of the students (kernels="auto") against the donor with SDPA attention, at T = 2k, 8k, 32k and a fixed number
  of tokens per step (targets: >= 1.0x the donor at 2k, >= 2x at 32k);
* decode: bf16, per-token latency, tokens/s and cache memory at contexts 2k-128k, batch 1 and 32, against the
  donor with a static KV cache (targets: student latency flat within 15% from 2k to 128k; >= 5x the donor's
  throughput at 32k and batch 32; state memory <= 2% of the donor's KV cache at 32k). The donor's cache holds
  random keys and values of the full length; the student's state comes from a 128-token prefill, its position
  then set to the context (a step's cost does not depend on what the state holds);
* compile: one student's training step eager against ``torch.compile``, with the compile time.

    make bench-gpu                                   # CUDA machine; benchmarks/results/gpu.json
    python benchmarks/gpu.py --smoke --out /tmp/g.json   # any machine, tiny shapes (tests/benchmarks)

Packages that a device lacks travel as wheels (``benchmarks/gpu_wheels.sh``; see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

RESULTS = Path(__file__).parent / "results"
MIXERS = ("retention", "gla", "mamba2", "linear", "deltanet", "gated_deltanet")
# SmolLM2-135M's published shape (config.json of HuggingFaceTB/SmolLM2-135M), with room for 128k positions
SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
               max_position_embeddings=262144, hidden_act="silu")
TINY = dict(SMOLLM2, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)
FULL = dict(train_T=(2048, 8192, 32768), train_tokens=32768, contexts=(2048, 8192, 32768, 131072), batches=(1, 32),
            parity=dict(B=2, H=4, T=1000, K=64, V=64), kernel_shape=(8, 2048), kernel_steps=(3, 5), steps=(2, 3),
            decode_steps=(3, 10))
SMOKE = dict(train_T=(32, 64), train_tokens=128, contexts=(64, 256), batches=(1, 2),
             parity=dict(B=1, H=2, T=70, K=16, V=16), kernel_shape=(2, 64), kernel_steps=(1, 1), steps=(1, 2),
             decode_steps=(1, 3))
TOL = {"float32": 5e-3, "bfloat16": 5e-2}     # fp32: fla's dots run in TF32; bf16 against the fp32 reference


class Budget:
    """Seconds left of --budget. Each section gets its share of the whole (SHARES) plus what earlier sections left
    unused, so that a slow section cannot starve the later ones; items skip themselves (recorded) past it."""

    def __init__(self, seconds: float):
        self.total, self.skipped = seconds, []
        self.end = self.section_end = time.perf_counter() + seconds
        self.carry = 0.0

    def start(self, share: float) -> None:
        now = time.perf_counter()
        if self.section_end < self.end:                  # the previous section's unused time carries over
            self.carry = max(0.0, self.section_end - now)
        self.section_end = min(self.end, now + share * self.total + self.carry)

    def left(self) -> float:
        return self.section_end - time.perf_counter()

    def allow(self, what: str, need: float = 0.0) -> bool:
        if self.left() > need:
            return True
        self.skipped.append(what)
        return False


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup``."""
    times = []
    for i in range(warmup + repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def guarded(fn):
    """fn() or {"error": "..."} (out of memory, a kernel's failure): one item never stops the run."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - recorded in the JSON, the benchmark goes on
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak(device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


# ---------------------------------------------------------------------------------------------- models
def donor_config(shape: dict):
    from transformers import LlamaConfig

    return LlamaConfig(**shape, attn_implementation="sdpa")


def make_donor(cfg, device, dtype):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(device, dtype)


def make_student(cfg, mixer: str, device, dtype, kernels: str = "auto"):
    import xatl

    torch.manual_seed(0)
    return xatl.XATLForCausalLM(xatl.student_config(cfg, mixer=mixer, mixer_options={"kernels": kernels})).to(
        device, dtype)


# ---------------------------------------------------------------------------------------------- sections
def section_parity(args, device, budget) -> dict:
    from xatl.ops import fla_backend, parity

    if not fla_backend.fla_usable(torch.ones(1, device=device)):
        return {"skipped": "fla's kernels need CUDA and the fla package"}
    out = {}
    for kind in parity.OPS:
        for dtype in (torch.float32, torch.bfloat16):
            name = f"{kind}/{str(dtype).removeprefix('torch.')}"
            if not budget.allow(f"parity {name}"):
                continue
            errors = guarded(lambda kind=kind, dtype=dtype: parity.compare(kind, device=device, dtype=dtype,
                                                                            **args.sizes["parity"]))
            if "error" not in errors:
                tol = TOL[str(dtype).removeprefix("torch.")]
                errors = {"errors": errors, "tolerance": tol,
                          "passed": all(e is None or e <= tol for e in errors.values())}
            out[name] = errors
            print(f"  parity {name}: {errors}", flush=True)
    return out


def fla_layer(mixer: str, C: int, H: int):
    """flash-linear-attention's own layer with the student mixer's width and heads."""
    from fla import layers

    D = C // H
    return {"gla": lambda: layers.GatedLinearAttention(hidden_size=C, num_heads=H, expand_k=1.0, expand_v=1.0),
            "retention": lambda: layers.MultiScaleRetention(hidden_size=C, num_heads=H, expand_k=1.0, expand_v=1.0),
            "linear": lambda: layers.LinearAttention(hidden_size=C, num_heads=H, expand_k=1.0, expand_v=1.0,
                                                     feature_map="elu"),
            "deltanet": lambda: layers.DeltaNet(hidden_size=C, num_heads=H, expand_k=1.0, expand_v=1.0),
            "gated_deltanet": lambda: layers.GatedDeltaNet(hidden_size=C, num_heads=H, head_dim=D, expand_v=1),
            "mamba2": lambda: layers.Mamba2(hidden_size=C, num_heads=2 * C // D, head_dim=D, state_size=D,
                                            expand=2)}[mixer]()


def _xatl_mixer_call(cfg, mixer: str, device, B: int, T: int, kernels: str):
    """(the mixer module of a 1-layer bf16 student, a fwd+bwd closure on a (B, T, C) input)."""
    model = make_student(cfg, mixer, device, torch.bfloat16, kernels=kernels)
    captured = {}
    layer = model.model.layers[0].mixer
    hook = layer.register_forward_pre_hook(lambda m, a, kw: captured.update(ctx=a[1] if len(a) > 1 else kw["ctx"]),
                                           with_kwargs=True)
    with torch.no_grad():
        model(input_ids=torch.zeros(B, T, dtype=torch.long, device=device), use_cache=False)
    hook.remove()
    x = torch.randn(B, T, cfg.hidden_size, device=device, dtype=torch.bfloat16, requires_grad=True)

    def step():
        y, _ = layer(x, captured["ctx"])
        y.float().sum().backward()
    return layer, step


def section_kernels(args, device, budget) -> dict:
    """Without CUDA or fla (the smoke run), xatl's side alone, with the torch kernels, so the code path stays alive."""
    from xatl.ops import fla_backend

    usable = fla_backend.fla_usable(torch.ones(1, device=device))
    cfg = donor_config(dict(args.shape, num_hidden_layers=1))          # one layer: its mixer is what is timed
    B, T = args.sizes["kernel_shape"]
    warm, reps = args.sizes["kernel_steps"]
    out = {}
    for mixer in MIXERS:
        if not budget.allow(f"kernels {mixer}", 20):
            continue

        def one(mixer=mixer):
            layer, step = _xatl_mixer_call(cfg, mixer, device, B, T, "fla" if usable else "torch")
            xatl_s = timed(step, device, warm, reps)
            r = {"xatl_ms": xatl_s * 1e3, "xatl_params": sum(p.numel() for p in layer.parameters()),
                 "shape": [B, T, cfg.hidden_size], "xatl_kernels": "fla" if usable else "torch"}
            if not usable:
                return {**r, "fla": "not measured: fla's kernels need CUDA and the fla package"}
            ref = fla_layer(mixer, cfg.hidden_size, cfg.num_attention_heads).to(device, torch.bfloat16)
            x = torch.randn(B, T, cfg.hidden_size, device=device, dtype=torch.bfloat16, requires_grad=True)
            fla_s = timed(lambda: ref(x)[0].float().sum().backward(), device, warm, reps)
            return {**r, "fla_ms": fla_s * 1e3, "xatl_over_fla": xatl_s / fla_s,
                    "fla_params": sum(p.numel() for p in ref.parameters())}
        out[mixer] = guarded(one)
        print(f"  kernels {mixer}: {out[mixer]}", flush=True)
        free()
    return out


def _train_rate(model, device, B: int, T: int, vocab: int, warm: int, reps: int) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(0, vocab, (B, T), device=device)
    bf16 = device.type == "cuda"

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    s = timed(step, device, warm, reps)
    return {"tokens_per_s": B * T / s, "step_ms": s * 1e3, "batch": B, "peak_memory_bytes": peak(device)}


def section_train(args, device, budget) -> dict:
    cfg = donor_config(args.shape)
    warm, reps = args.sizes["steps"]
    out = {}
    for T in args.sizes["train_T"]:
        B = max(1, args.sizes["train_tokens"] // T)
        row = {}
        for name in ("donor", *MIXERS):
            if not budget.allow(f"train {name} T={T}", 15):
                continue

            def one(name=name, B=B, T=T):
                model = (make_donor(cfg, device, torch.float32) if name == "donor"
                         else make_student(cfg, name, device, torch.float32)).train()
                return _train_rate(model, device, B, T, cfg.vocab_size, warm, reps)
            row[name] = guarded(one)
            free()
            print(f"  train T={T} {name}: {row[name]}", flush=True)
        d = row.get("donor", {}).get("tokens_per_s")
        for name in MIXERS:
            if d and "tokens_per_s" in row.get(name, {}):
                row[name]["over_donor"] = row[name]["tokens_per_s"] / d
        out[str(T)] = row
    return out


@torch.inference_mode()
def _decode_donor(model, cfg, device, B: int, L: int, warm: int, reps: int) -> dict:
    from transformers import StaticCache

    kvh, hd = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    cache = StaticCache(config=cfg, max_cache_len=L + warm + reps + 1)
    pos = torch.arange(L, device=device)
    dtype = next(model.parameters()).dtype
    for i in range(cfg.num_hidden_layers):               # the cache of an L-token context: random keys and values
        k = torch.randn(B, kvh, L, hd, device=device, dtype=dtype)
        cache.update(k, torch.randn_like(k), i, {"cache_position": pos})
        del k
    state = {"pos": L}
    tok = torch.zeros(B, 1, dtype=torch.long, device=device)

    def step():
        p = state["pos"]
        model(input_ids=tok, past_key_values=cache, use_cache=True,
              cache_position=torch.tensor([p], device=device), position_ids=torch.full((B, 1), p, device=device))
        state["pos"] += 1
    s = timed(step, device, warm, reps)
    kv = 2 * cfg.num_hidden_layers * B * kvh * L * hd * dtype.itemsize
    return {"ms_per_token": s * 1e3, "tokens_per_s": B / s, "cache_bytes": kv, "cache": "StaticCache",
            "peak_memory_bytes": peak(device)}


@torch.inference_mode()
def _decode_student(model, device, B: int, L: int, warm: int, reps: int) -> dict:
    ids = torch.zeros(B, 128 if L >= 128 else L, dtype=torch.long, device=device)
    out = model(input_ids=ids, use_cache=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    cache.seen_tokens = L                                # position L: RoPE angles as at that context
    tok = ids[:, :1]
    s = timed(lambda: model(input_ids=tok, cache=cache, use_cache=True), device, warm, reps)
    return {"ms_per_token": s * 1e3, "tokens_per_s": B / s, "cache_bytes": cache.nbytes(),
            "peak_memory_bytes": peak(device)}


def section_decode(args, device, budget) -> dict:
    cfg = donor_config(args.shape)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    warm, reps = args.sizes["decode_steps"]
    out = {}
    for name in ("donor", "retention", "gla", "gated_deltanet", "mamba2", "linear", "deltanet"):
        if not budget.allow(f"decode {name}", 20):
            continue
        model = (make_donor(cfg, device, dtype) if name == "donor" else make_student(cfg, name, device, dtype)).eval()
        rows = {}
        for B in args.sizes["batches"]:
            for L in args.sizes["contexts"]:
                if not budget.allow(f"decode {name} b{B} {L}", 10):
                    continue
                fn = (lambda B=B, L=L, m=model: _decode_donor(m, cfg, device, B, L, warm, reps)) if name == "donor" \
                    else (lambda B=B, L=L, m=model: _decode_student(m, device, B, L, warm, reps))
                rows[f"b{B}/{L}"] = guarded(fn)
                free()
                print(f"  decode {name} b{B} {L}: {rows[f'b{B}/{L}']}", flush=True)
        out[name] = rows
        del model
        free()
    return out


def section_compile(args, device, budget) -> dict:
    if device.type != "cuda":
        return {"skipped": "measured on CUDA only"}
    if not budget.allow("compile", 90):
        return {"skipped": "time budget"}
    cfg = donor_config(args.shape)
    T = args.sizes["train_T"][0]
    B = max(1, args.sizes["train_tokens"] // T)
    warm, reps = args.sizes["steps"]

    def one():
        model = make_student(cfg, "retention", device, torch.float32).train()
        eager = _train_rate(model, device, B, T, cfg.vocab_size, warm, reps)
        t0 = time.perf_counter()
        compiled = torch.compile(model)
        first = _train_rate(compiled, device, B, T, cfg.vocab_size, 0, 1)
        compile_s = time.perf_counter() - t0 - first["step_ms"] / 1e3
        steady = _train_rate(compiled, device, B, T, cfg.vocab_size, warm, reps)
        return {"mixer": "retention", "T": T, "eager": eager, "compiled": steady, "compile_seconds": compile_s,
                "speedup": steady["tokens_per_s"] / eager["tokens_per_s"]}
    return guarded(one)


# ---------------------------------------------------------------------------------------------- targets
def targets(results: dict, sizes: dict) -> dict:
    """The issue's targets, each with the measured value (None where its inputs were not measured)."""
    out = {}
    train = results.get("train", {})
    for T, want in ((str(sizes["train_T"][0]), 1.0), (str(sizes["train_T"][-1]), 2.0)):
        ratios = {m: r.get("over_donor") for m, r in train.get(T, {}).items() if m != "donor"}
        out[f"train T={T}: student >= {want}x donor"] = {"measured": ratios, "met": {m: (v is not None and v >= want)
                                                                                    for m, v in ratios.items()}}
    dec = results.get("decode", {})
    lo, hi, mid, big = sizes["contexts"][0], sizes["contexts"][-1], sizes["contexts"][-2], sizes["batches"][-1]
    for name, rows in dec.items():
        if name == "donor":
            continue
        for B in sizes["batches"]:
            a, b = rows.get(f"b{B}/{lo}", {}).get("ms_per_token"), rows.get(f"b{B}/{hi}", {}).get("ms_per_token")
            if a and b:
                out[f"decode {name} b{B}: latency {lo}->{hi} within 15%"] = {"measured": b / a - 1,
                                                                             "met": abs(b / a - 1) <= 0.15}
        s, d = rows.get(f"b{big}/{mid}", {}), dec.get("donor", {}).get(f"b{big}/{mid}", {})
        if "tokens_per_s" in s and "tokens_per_s" in d:
            r = s["tokens_per_s"] / d["tokens_per_s"]
            out[f"decode {name} b{big} {mid}: >= 5x donor throughput"] = {"measured": r, "met": r >= 5}
        s1, d1 = rows.get(f"b1/{mid}", {}), dec.get("donor", {}).get(f"b1/{mid}", {})
        if "cache_bytes" in s1 and "cache_bytes" in d1:
            r = s1["cache_bytes"] / d1["cache_bytes"]
            out[f"decode {name} {mid}: state <= 2% of donor KV"] = {"measured": r, "met": r <= 0.02}
    ker = results.get("kernels", {})
    for m, r in ker.items():
        if isinstance(r, dict) and "xatl_over_fla" in r:
            out[f"kernels {m}: within 1.2x of fla"] = {"measured": r["xatl_over_fla"], "met": r["xatl_over_fla"] <= 1.2}
    return out


def machine(device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for pkg in ("triton", "fla", "transformers"):
        try:
            info[pkg] = __import__(pkg).__version__
        except Exception:  # noqa: BLE001 - absent or broken: recorded as such
            info[pkg] = None
    return info


SECTIONS = {"parity": section_parity, "kernels": section_kernels, "train": section_train, "decode": section_decode,
            "compile": section_compile}
SHARES = {"parity": 0.1, "kernels": 0.15, "train": 0.3, "decode": 0.2, "compile": 0.25}   # of --budget


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes on any device (seconds): keeps the script working")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, from " + ", ".join(SECTIONS))
    p.add_argument("--budget", type=float, default=420.0, help="seconds for all sections (default 420: 7 minutes)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/gpu.json; none with --smoke)")
    args = p.parse_args(argv)
    args.shape, args.sizes = (TINY, SMOKE) if args.smoke else (SMOLLM2, FULL)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        p.error("no CUDA device: this benchmark measures a GPU (use --smoke to check the script on CPU)")
    budget = Budget(args.budget)
    t0 = time.perf_counter()
    results = {"machine": machine(device), "smoke": args.smoke, "budget_s": args.budget}
    for name in args.sections.split(","):
        if name not in SECTIONS:
            p.error(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        budget.start(SHARES[name])
        print(f"[{name}] {budget.left():.0f} s for this section", flush=True)
        results[name] = SECTIONS[name](args, device, budget)
    results["targets"] = targets(results, args.sizes)
    results["skipped"], results["wall_s"] = budget.skipped, time.perf_counter() - t0
    out = args.out or (None if args.smoke else RESULTS / "gpu.json")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=1, default=str))
        print(f"wrote {out}")
    for k, v in results["targets"].items():
        print(f"  {k}: {v}")
    return results


if __name__ == "__main__":
    main()

"""CPU decode speed of SmolLM2-sized students beside the hardware floor, with lower-precision weights, batch
scaling, the donor with its KV cache, and transformers' own Mamba / Mamba-2 (issue 18).

Every model has random weights of the real shapes (the cost of a step does not depend on the values); every figure
is the median of --steps single-token steps after a prefill (``xatl.eval.profile``), and every floor is (bytes a
step must read) / (read bandwidth measured once in this process). Sections:

* kernels: how fast each matrix-vector kernel streams cold weights (GB/s), beside a plain sum;
* precision: a retention and a GLA student at 512 tokens of context, batch 1 and 8, as fp32, fp32 with
  oneDNN-packed linears (``pack_for_cpu``), bf16 packed, and int8 (``quantize_student``): every linear layer, or
  with the MLPs' down projections kept in fp32 (``xatl quantize``'s default), plain or packed;
* donor: the donor (SDPA + DynamicCache) against the fp32 retention and GLA students, each also packed (the donor
  too), and the int8 retention student, at 512 and 16384 tokens, batch 1;
* batch: every mixer, fp32, batch 1 and 8 at 512 tokens: tokens/s at 8 over tokens/s at 1;
* transformers: xatl mamba / mamba2 against ``MambaForCausalLM`` / ``Mamba2ForCausalLM`` with the same widths
  (hidden 576, 2 layers; xatl's MLPs shrunk to width 1 so both are mixer + norm + head), with a 1024-token
  vocabulary (--transformers-vocab) so that the LM head does not hide the mixers, and with SmolLM2's.

    python benchmarks/decode_speed.py                      # about 10 minutes on the 2-core CPU
    python benchmarks/decode_speed.py --quick              # smoke run, tiny shapes
writes benchmarks/results/decode_speed.json.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def donor_config(quick: bool):
    from transformers import LlamaConfig

    if quick:
        return LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    from transformers import AutoConfig

    from xatl.assets import fetch

    return AutoConfig.from_pretrained(fetch("smollm2-135m", progress=False))


def student(cfg, mixer: str, **overrides):
    import xatl

    torch.manual_seed(0)
    return xatl.XATLForCausalLM(xatl.student_config(cfg, mixer=mixer, **overrides)).eval()


def variant(model, name: str):
    from xatl.inference import pack_for_cpu, quantize_student

    m = copy.deepcopy(model)
    if name == "fp32":
        return m
    if name == "fp32-packed":
        return pack_for_cpu(m)
    if name == "bf16-packed":
        return pack_for_cpu(m.to(torch.bfloat16))
    if name == "int8":
        return quantize_student(m, "int8")
    if name == "int8-keep-down":                      # xatl quantize's default: the MLPs' down_proj in fp32
        return quantize_student(m, "int8", keep_float=["down_proj"])
    if name == "int8-keep-down-packed":
        return pack_for_cpu(quantize_student(m, "int8", keep_float=["down_proj"]))
    raise ValueError(name)


def profile(model, contexts, batch: int, steps: int) -> dict:
    from xatl.eval.profile import ProfileConfig, profile_model

    cfg = ProfileConfig(contexts=contexts, decode_steps=steps, warmup_steps=3, batch_size=batch, bound=True)
    out = profile_model(model, cfg, progress=False)
    pts = {p["context"]: {k: p[k] for k in ("decode_ms_per_token", "floor_ms_per_token", "fraction_of_floor",
                                            "decode_noise", "cache_bytes", "error")} for p in out["points"]}
    for p in pts.values():
        if p["decode_ms_per_token"]:
            p["tokens_per_s"] = batch * 1e3 / p["decode_ms_per_token"]
    return {"streamed_weight_bytes": out.get("streamed_weight_bytes"), "points": pts}


def section_precision(cfg, args) -> dict:
    out = {}
    for mixer in ("retention", "gla"):
        base = student(cfg, mixer)
        for name in ("fp32", "fp32-packed", "bf16-packed", "int8", "int8-keep-down", "int8-keep-down-packed"):
            m = variant(base, name)
            for batch in (1, 8):
                r = profile(m, [args.context], batch, args.steps)
                out[f"{mixer}/{name}/b{batch}"] = r
                p = r["points"][args.context]
                print(f"  {mixer:9s} {name:12s} batch {batch}: {p['decode_ms_per_token']:.1f} ms/step, "
                      f"{p['tokens_per_s']:.1f} tok/s, {p['fraction_of_floor']:.2f} of floor", flush=True)
            del m
            gc.collect()
        del base
    return out


def section_donor(cfg, args) -> dict:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    from xatl.inference import pack_for_cpu

    def donor():
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()

    models = {"donor": donor,
              "retention/fp32": lambda: student(cfg, "retention"),
              "gla/fp32": lambda: student(cfg, "gla"),
              "donor/fp32-packed": lambda: pack_for_cpu(donor()),
              "retention/fp32-packed": lambda: variant(student(cfg, "retention"), "fp32-packed"),
              "gla/fp32-packed": lambda: variant(student(cfg, "gla"), "fp32-packed"),
              "retention/int8": lambda: variant(student(cfg, "retention"), "int8")}
    out = {}
    for name, build in models.items():
        m = build()
        out[name] = profile(m, args.donor_contexts, 1, args.steps)
        for c, p in out[name]["points"].items():
            print(f"  {name:15s} context {c}: {p['decode_ms_per_token']:.1f} ms/step", flush=True)
        del m
        gc.collect()
    def ms(name, c):
        return out[name]["points"][c]["decode_ms_per_token"]

    out["speedup_over_donor"] = {name: {c: ms("donor", c) / ms(name, c) for c in args.donor_contexts}
                                 for name in models if name != "donor"}
    out["speedup_over_packed_donor"] = {name: {c: ms("donor/fp32-packed", c) / ms(name, c) for c in args.donor_contexts}
                                        for name in models if name.endswith("packed") and not name.startswith("donor")}
    return out


def section_batch(cfg, args) -> dict:
    from xatl.mixers.registry import MIXERS

    out = {}
    for mixer in MIXERS:
        base = student(cfg, mixer)
        for name in ("fp32", "fp32-packed"):
            m = variant(base, name)
            r = {b: profile(m, [args.context], b, args.steps)["points"][args.context] for b in (1, 8)}
            out[f"{mixer}/{name}"] = {"b1": r[1], "b8": r[8], "scaling": r[8]["tokens_per_s"] / r[1]["tokens_per_s"]}
            print(f"  {mixer:15s} {name:12s} batch 8 / batch 1 throughput: {out[f'{mixer}/{name}']['scaling']:.2f}x "
                  f"({r[1]['tokens_per_s']:.1f} -> {r[8]['tokens_per_s']:.1f} tok/s)", flush=True)
            del m
        del base
        gc.collect()
    return out


def section_transformers(cfg, args) -> dict:
    C, H = cfg.hidden_size, cfg.num_attention_heads
    out = {}
    for V in sorted({args.transformers_vocab, cfg.vocab_size}):
        out[f"vocab{V}"] = _against_transformers(C, H, V, args)
    return out


def _against_transformers(C: int, H: int, V: int, args) -> dict:
    from transformers import LlamaConfig, Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

    D = C // H
    base = LlamaConfig(vocab_size=V, hidden_size=C, intermediate_size=1, num_hidden_layers=2, num_attention_heads=H,
                       num_key_value_heads=H, tie_word_embeddings=True)
    torch.manual_seed(0)
    pairs = {
        "mamba": (lambda: student(base, "mamba", mixer_options={"expand": 2, "d_state": 16}),
                  lambda: MambaForCausalLM(MambaConfig(vocab_size=V, hidden_size=C, state_size=16, expand=2,
                                                       conv_kernel=4, num_hidden_layers=2)).eval()),
        "mamba2": (lambda: student(base, "mamba2", mixer_options={"expand": 2}),
                   lambda: Mamba2ForCausalLM(Mamba2Config(vocab_size=V, hidden_size=C, num_heads=2 * H, head_dim=D,
                                                          expand=2, state_size=D, n_groups=H, conv_kernel=4,
                                                          num_hidden_layers=2, chunk_size=64)).eval()),
    }
    out = {}
    for mixer, (ours, theirs) in pairs.items():
        a, b = ours(), theirs()
        packed = variant(a, "fp32-packed")
        for batch in (1, 8):
            pa = profile(a, [args.context], batch, args.steps)["points"][args.context]
            pp = profile(packed, [args.context], batch, args.steps)["points"][args.context]
            pb = profile(b, [args.context], batch, args.steps)["points"][args.context]
            ratio = pb["decode_ms_per_token"] / pa["decode_ms_per_token"]
            ratio_packed = pb["decode_ms_per_token"] / pp["decode_ms_per_token"]
            out[f"{mixer}/b{batch}"] = {"xatl": pa, "xatl_packed": pp, "transformers": pb,
                                        "xatl_over_transformers": ratio, "xatl_packed_over_transformers": ratio_packed,
                                        "xatl_parameters": sum(p.numel() for p in a.parameters()),
                                        "transformers_parameters": sum(p.numel() for p in b.parameters())}
            print(f"  vocab {V:6d} {mixer:7s} batch {batch}: xatl {pa['decode_ms_per_token']:.2f} ms "
                  f"(packed {pp['decode_ms_per_token']:.2f}), transformers {pb['decode_ms_per_token']:.2f} ms -> "
                  f"{ratio:.2f}x ({ratio_packed:.2f}x packed)", flush=True)
        del a, b, packed
        gc.collect()
    return out


def _rate(fn, items, nbytes: int) -> float:
    """GB/s of ``fn`` over ``items`` (best of 3 passes after a warm one), ``nbytes`` read per item."""
    for it in items:
        fn(it)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, (time.perf_counter() - t) / len(items))
    return nbytes / best / 1e9


def _kernel_rates(o: int, i: int, total_bytes: float) -> dict:
    import torch.nn.functional as F

    from xatl.models.quantization import Int8Linear

    n, nbytes = max(2, int(total_bytes // (o * i * 4))), o * i * 4
    Ws = [torch.randn(o, i) for _ in range(n)]
    x = torch.randn(1, i)
    r = {"F.linear (MKL GEMV)": _rate(lambda W: F.linear(x, W), Ws, nbytes),
         "x @ W.T, W stored transposed": _rate(lambda W: x @ W, [W.t().contiguous() for W in Ws], nbytes),
         "oneDNN packed (pack_for_cpu)": _rate(lambda p: torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], ""),
                                               [torch.ops.mkldnn._reorder_linear_weight(W, 1) for W in Ws], nbytes),
         "int8 fbgemm (Int8Linear), int8 bytes": _rate(
             lambda q: q(x), [Int8Linear.from_linear(torch.nn.Linear(i, o, bias=False)) for _ in range(n)], o * i),
         "sum over the weights": _rate(lambda W: W.sum(), Ws, nbytes)}
    print(f"  {o} x {i}: " + ", ".join(f"{k} {v:.1f} GB/s" for k, v in r.items()), flush=True)
    return r


def section_kernels(cfg, args) -> dict:
    """GB/s of one-token products over cold weights (more than the caches hold), by kernel."""
    C = cfg.hidden_size
    return {f"{o}x{i}": _kernel_rates(o, i, args.kernel_bytes) for o, i in ((cfg.intermediate_size, C),
                                                                          (cfg.vocab_size, C))}


SECTIONS = {"kernels": section_kernels, "precision": section_precision, "donor": section_donor, "batch": section_batch,
            "transformers": section_transformers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--steps", type=int, default=16, help="timed decode steps per point (median reported)")
    ap.add_argument("--context", type=int, default=512, help="context of the precision, batch and transformers runs")
    ap.add_argument("--donor-contexts", default="512,16384", help="contexts of the donor comparison")
    ap.add_argument("--transformers-vocab", type=int, default=1024, help="vocabulary of the transformers comparison "
                    "(besides the donor's)")
    ap.add_argument("--kernel-bytes", type=float, default=8e8, help="weights per kernel measurement (past the caches)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, a few steps: a smoke run")
    ap.add_argument("--out", default=str(RESULTS / "decode_speed.json"))
    args = ap.parse_args()
    args.donor_contexts = [int(c) for c in args.donor_contexts.split(",")]
    if args.quick:
        args.steps, args.context, args.donor_contexts, args.transformers_vocab = 3, 32, [32, 64], 128
        args.kernel_bytes = 4e6
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = donor_config(args.quick)
    from xatl.eval.profile import read_bandwidth

    bandwidth = read_bandwidth(torch.device("cpu"))
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "read_bandwidth_bytes_per_s": bandwidth},
              "settings": {"steps": args.steps, "context": args.context, "donor_contexts": args.donor_contexts,
                           "quick": args.quick},
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    print(f"read bandwidth {bandwidth / 1e9:.1f} GB/s, {torch.get_num_threads()} threads")
    for name in args.sections.split(","):
        print(f"[{name}]", flush=True)
        t = time.perf_counter()
        result[name] = SECTIONS[name](cfg, args)
        result[name + "_seconds"] = time.perf_counter() - t
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Token-mixer speed and memory on CPU: every LCI mixer's chunked form against causal softmax attention (SDPA).

One mixer module (projections included, as in a student layer) at the SmolLM2 geometry (hidden 576, 9 heads,
3 KV heads, head dim 64), batch 1, random weights (cost does not depend on the values). Measured:

* throughput: forward+backward tokens/s of each mixer's chunked form and of ``softmax`` (the donor's attention:
  ``F.scaled_dot_product_attention(is_causal=True)``), at --lengths (default 512, 2048, 8192); median of --reps.
* peak memory of one forward+backward: each (mixer, T) runs in a fresh subprocess that resets its peak resident set
  size (writing 5 to /proc/self/clear_refs), runs the pass and reports the peak (VmHWM) minus the RSS just before,
  in MiB. RSS counts every byte torch's CPU allocator takes from the OS (tracemalloc cannot see torch's
  allocations), so it is an upper bound of what the pass needs; the fresh process keeps other runs out of it.
* chunked vs recurrent: forward+backward of the chunked form against the token-by-token recurrent form (the
  decoding step run T times) at --recurrent-length (default 2048).
* decode: one recurrent step's time (median of --steps) after --seen tokens (default 0, 512, 2048, 8192; the state
  is prefilled with the chunked form), to show it does not grow with the context (softmax's does).

Targets (issue 3) are judged in "targets": every LCI mixer >= SDPA at T=2048 and >= 2x at T=8192; chunked >= 5x
the recurrent loop at T=2048; peak memory growing linearly in T.

    python benchmarks/mixers.py                                          # the full run (minutes; quiet machine)
    python benchmarks/mixers.py --lengths 256,512 --recurrent-length 256 --seen 0,256 --reps 1   # smoke run
writes benchmarks/results/mixers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
LCI = ("linear", "retention", "gla", "mamba", "mamba2", "swa", "deltanet", "gated_deltanet")
BASELINE = "softmax"


def _ints(text: str) -> list[int]:
    return sorted({int(t) for t in text.split(",") if t.strip()})


def build(mixer: str, args) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(mixer module of layer 0, rotary embedding) at the benchmark geometry, fp32, random weights."""
    from xatl.mixers.registry import build_mixer
    from xatl.models.configuration_xatl import XATLConfig
    from xatl.models.layers import RotaryEmbedding

    opts = {}
    if mixer != BASELINE:
        opts = {k: v for k, v in (("chunk_size", args.chunk_size), ("window", args.window)) if v is not None}
        if mixer != "swa":
            opts.pop("window", None)
    cfg = XATLConfig(vocab_size=128, hidden_size=args.hidden, num_attention_heads=args.heads,
                     num_key_value_heads=args.kv_heads, head_dim=args.head_dim, num_hidden_layers=1,
                     intermediate_size=4 * args.hidden, mixer=mixer, mixer_options=opts,
                     rope_parameters={"rope_type": "default", "rope_theta": 100000.0})
    torch.manual_seed(0)
    return build_mixer(cfg, 0).float(), RotaryEmbedding(cfg)


def _ctx(rotary, x, start: int = 0):
    from xatl.mixers.base import MixerContext

    pos = torch.arange(start, start + x.shape[1]).expand(x.shape[0], -1)
    return MixerContext(position_ids=pos, rope=rotary(x, pos))


def fwd_bwd(mixer, rotary, x) -> None:
    xr = x.detach().requires_grad_()
    y, _ = mixer(xr, _ctx(rotary, xr))
    y.sum().backward()


def timed(fn, reps: int) -> float:
    """Median seconds of ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def op_case(name: str, T: int, args):
    """The token-mixing op of mixer ``name`` alone (no projections), on random inputs of the mixer's shapes:
    (leaf inputs, chunked(*inputs) -> o, recurrent(*inputs) -> o or None)."""
    import torch.nn.functional as F

    from xatl.mixers.registry import get_mixer_class
    from xatl.ops import delta_rule, gla, linear_attention, retention, selective_scan, sliding_window, ssd

    B, H, Hkv, D = args.batch, args.heads, args.kv_heads, args.head_dim
    opts = get_mixer_class(name).Options() if name != BASELINE else None
    cs = args.chunk_size or getattr(opts, "chunk_size", 64)
    bh = lambda *tail: torch.randn(B, H, T, *tail)                                    # noqa: E731
    if name == BASELINE:
        ins = [bh(D), torch.randn(B, Hkv, T, D), torch.randn(B, Hkv, T, D)]
        return ins, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), None
    if name == "linear":
        fm = lambda f: lambda q, k, v: f(F.elu(q) + 1, F.elu(k) + 1, v)[0]           # noqa: E731
        return [bh(D), bh(D), bh(D)], fm(lambda *a: linear_attention.chunk_linear_attn(*a, chunk_size=cs)), \
            fm(linear_attention.recurrent_linear_attn)
    if name == "retention":
        dec = torch.log(1 - 2.0 ** (-5.0 - torch.arange(H, dtype=torch.float32)))
        return [bh(D), bh(D), bh(D)], lambda q, k, v: retention.chunk_retention(q, k, v, dec, chunk_size=cs)[0], \
            lambda q, k, v: retention.recurrent_retention(q, k, v, dec)[0]
    if name == "gla":
        gate = lambda f: lambda q, k, v, z: f(q, k, v, F.logsigmoid(z) / 16)[0]        # noqa: E731
        return [bh(D), bh(D), bh(D), bh(D)], gate(lambda *a: gla.chunk_gla(*a, chunk_size=cs)), \
            gate(gla.recurrent_gla)
    if name == "mamba2":
        gate = lambda f: lambda q, k, v, z: f(q, k, v, -F.softplus(z))[0]              # noqa: E731
        return [bh(D), bh(D), bh(D), bh()], gate(lambda *a: ssd.chunk_ssd(*a, chunk_size=cs)), gate(ssd.recurrent_ssd)
    if name == "mamba":
        Din, N = opts.expand * H * D, opts.d_state
        A = -torch.arange(1, N + 1, dtype=torch.float32).repeat(Din, 1)
        step = lambda f: lambda C, Bm, x, z: f(C, Bm, x, F.softplus(z - 4), A)[0]    # noqa: E731
        ins = [torch.randn(B, T, N), torch.randn(B, T, N), torch.randn(B, T, Din), torch.randn(B, T, Din)]
        return ins, step(lambda *a: selective_scan.chunk_selective_scan(*a, chunk_size=cs)), \
            step(selective_scan.recurrent_selective_scan)
    if name == "swa":
        w = args.window or opts.window
        ins = [bh(D), torch.randn(B, Hkv, T, D), torch.randn(B, Hkv, T, D)]
        return ins, lambda q, k, v: sliding_window.chunk_swa(q, k, v, w, chunk_size=cs)[0], \
            lambda q, k, v: sliding_window.recurrent_swa(q, k, v, w)[0]
    if name in ("deltanet", "gated_deltanet"):                                     # as the mixer: L2-normed q, k
        def rule(f):
            def run(q, k, v, b, a):
                g = -F.softplus(a - 4) if name == "gated_deltanet" else None
                return f(F.normalize(q, dim=-1) * D**-0.5, F.normalize(k, dim=-1), v, torch.sigmoid(b), g)[0]
            return run
        return [bh(D), bh(D), bh(D), bh(), bh()], rule(lambda *a: delta_rule.chunk_delta_rule(*a, chunk_size=cs)), \
            rule(delta_rule.recurrent_delta_rule)
    raise ValueError(f"no op case for mixer {name!r}")


def op_fwd_bwd(fn, inputs) -> None:
    leaves = [t.detach().requires_grad_() for t in inputs]
    fn(*leaves).sum().backward()


def throughput(args) -> list[dict]:
    rows = []
    for T in args.lengths:
        x = torch.randn(args.batch, T, args.hidden)
        for name in args.mixers:
            for level in args.levels:
                if level == "mixer":
                    mixer, rotary = build(name, args)
                    s = timed(partial(fwd_bwd, mixer, rotary, x), args.reps)
                else:
                    inputs, chunked, _ = op_case(name, T, args)
                    s = timed(partial(op_fwd_bwd, chunked, inputs), args.reps)
                rows.append({"level": level, "mixer": name, "T": T, "fwd_bwd_s": s, "tokens_per_s": args.batch * T / s})
                print(f"[throughput] {level:5s} {name:10s} T={T:6d}  {s * 1e3:9.1f} ms  {args.batch * T / s:10.0f} tok/s",
                      flush=True)
    return rows


def memory_child(args) -> None:
    """Run in a subprocess: one forward+backward; print {"before_mib", "peak_mib"} (resident set sizes) as JSON."""
    mixer, rotary = build(args.mixers[0], args)
    x = torch.randn(args.batch, args.lengths[0], args.hidden)
    before = _status_mib("VmRSS")
    try:                                     # reset the peak (VmHWM) to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    fwd_bwd(mixer, rotary, x)
    peak = _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mib": before, "peak_mib": peak, "peak_reset": reset}))


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (kB) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory(args) -> list[dict]:
    rows = []
    for T in args.lengths:
        for name in args.mixers:
            cmd = [sys.executable, __file__, "--memory-child", "--mixers", name, "--lengths", str(T),
                   "--threads", str(args.threads)] + _geometry_flags(args)
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            peak = r["peak_mib"] - r["before_mib"]
            rows.append({"mixer": name, "T": T, "peak_mib": round(peak, 1)})
            print(f"[memory] {name:10s} T={T:6d}  peak +{peak:8.1f} MiB", flush=True)
    return rows


def _geometry_flags(args) -> list[str]:
    flags = ["--hidden", str(args.hidden), "--heads", str(args.heads), "--kv-heads", str(args.kv_heads),
             "--head-dim", str(args.head_dim), "--batch", str(args.batch)]
    if args.chunk_size is not None:
        flags += ["--chunk-size", str(args.chunk_size)]
    if args.window is not None:
        flags += ["--window", str(args.window)]
    return flags


def chunked_vs_recurrent(args) -> list[dict]:
    """Chunked vs token-by-token recurrent form, forward+backward and forward only, per level."""
    T, rows, reps = args.recurrent_length, [], max(1, args.reps // 2)
    x = torch.randn(args.batch, T, args.hidden)
    for name in [m for m in args.mixers if m != BASELINE]:
        for level in args.levels:
            res = {"level": level, "mixer": name, "T": T}
            if level == "mixer":
                mixer, rotary = build(name, args)
                for form in ("chunked", "recurrent"):
                    mixer.opts.form = form
                    res[f"{form}_fwd_bwd_s"] = timed(partial(fwd_bwd, mixer, rotary, x), reps)
                    with torch.no_grad():
                        res[f"{form}_fwd_s"] = timed(partial(mixer, x, _ctx(rotary, x)), reps)
            else:
                inputs, chunked, recurrent = op_case(name, T, args)
                for form, fn in (("chunked", chunked), ("recurrent", recurrent)):
                    res[f"{form}_fwd_bwd_s"] = timed(partial(op_fwd_bwd, fn, inputs), reps)
                    with torch.no_grad():
                        res[f"{form}_fwd_s"] = timed(partial(fn, *inputs), reps)
            res["speedup_fwd_bwd"] = res["recurrent_fwd_bwd_s"] / res["chunked_fwd_bwd_s"]
            res["speedup_fwd"] = res["recurrent_fwd_s"] / res["chunked_fwd_s"]
            rows.append(res)
            print(f"[chunked/recurrent] {level:5s} {name:10s} T={T}  fwd+bwd x{res['speedup_fwd_bwd']:.1f}  "
                  f"fwd x{res['speedup_fwd']:.1f}", flush=True)
    return rows


@torch.no_grad()
def decode(args) -> list[dict]:
    rows = []
    for name in args.mixers:
        mixer, rotary = build(name, args)
        for seen in args.seen:
            state = None
            if seen:
                x = torch.randn(args.batch, seen, args.hidden)
                _, state = mixer(x, _ctx(rotary, x), use_cache=True)
            else:
                state = mixer.init_state(args.batch, torch.device("cpu"), torch.float32)
                if name == BASELINE:
                    state = None
            step = torch.randn(args.batch, 1, args.hidden)
            ctx = _ctx(rotary, step, start=seen)
            times = []
            for _ in range(args.steps + 1):
                t = time.perf_counter()
                mixer(step, ctx, state=state, use_cache=False)
                times.append(time.perf_counter() - t)
            nbytes = sum(v.numel() * v.element_size() for v in (state or {}).values())
            rows.append({"mixer": name, "seen": seen, "step_ms": statistics.median(times[1:]) * 1e3,
                         "state_mib": nbytes / 2**20})
            print(f"[decode] {name:10s} seen={seen:6d}  {rows[-1]['step_ms']:.3f} ms/step  "
                  f"state {rows[-1]['state_mib']:.2f} MiB", flush=True)
    return rows


def targets(res: dict) -> dict:
    """The issue's targets, judged on what was measured (None where the needed point was not run)."""
    out = {}
    for level in ("mixer", "op"):
        tp = {(r["mixer"], r["T"]): r["tokens_per_s"] for r in res.get("throughput", []) if r["level"] == level}
        for T, factor in ((2048, 1.0), (8192, 2.0)):
            if (BASELINE, T) in tp:
                key = f"{level}_vs_sdpa_T{T}"
                out[key] = {m: round(tp[(m, T)] / tp[(BASELINE, T)], 2) for m in LCI if (m, T) in tp}
                out[f"{key}_met_x{factor:g}"] = all(v >= factor for v in out[key].values())
    for level in ("op", "mixer"):
        cr = [r for r in res.get("chunked_vs_recurrent", []) if r["level"] == level]
        if cr:
            out[f"{level}_chunked_vs_recurrent_fwd_bwd"] = {r["mixer"]: round(r["speedup_fwd_bwd"], 1) for r in cr}
            out[f"{level}_chunked_vs_recurrent_met_x5"] = all(r["speedup_fwd_bwd"] >= 5 for r in cr)
    mem = {(r["mixer"], r["T"]): r["peak_mib"] for r in res.get("memory", [])}
    Ts = sorted({T for _, T in mem})
    if len(Ts) >= 2:
        lo, hi = Ts[-2], Ts[-1]
        out[f"memory_growth_T{lo}_to_T{hi}"] = {m: round(mem[(m, hi)] / max(mem[(m, lo)], 1e-9), 2)
                                                for m in [BASELINE, *LCI] if (m, lo) in mem and (m, hi) in mem}
        out["memory_linear_reference_ratio"] = hi / lo
    return out


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mixers", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                   default=[BASELINE, *LCI], help="comma-separated mixers (default: softmax and every LCI mixer)")
    p.add_argument("--lengths", type=_ints, default=[512, 2048, 8192], help="sequence lengths T for throughput/memory")
    p.add_argument("--levels", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=["mixer", "op"],
                   help="mixer (the module, projections included) and/or op (the token-mixing op alone)")
    p.add_argument("--recurrent-length", type=int, default=2048, help="T of the chunked vs recurrent comparison")
    p.add_argument("--seen", type=_ints, default=[0, 512, 2048, 8192], help="tokens seen before the decode step")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median)")
    p.add_argument("--steps", type=int, default=20, help="decode steps timed per point (median)")
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--heads", type=int, default=9)
    p.add_argument("--kv-heads", type=int, default=3)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--chunk-size", type=int, default=None, help="override every LCI mixer's chunk_size")
    p.add_argument("--window", type=int, default=None, help="swa window (default: the mixer's, 512)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--skip", type=lambda s: set(s.split(",")), default=set(),
                   help="parts to skip: throughput,memory,recurrent,decode")
    p.add_argument("--out", type=Path, default=RESULTS / "mixers.json")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    if args.memory_child:
        memory_child(args)
        return 0
    res = {"settings": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                        for k, v in vars(args).items() if k != "memory_child"},
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch": torch.__version__, "python": platform.python_version()},
           "method": __doc__.split("\n\n")[1:3]}
    if "throughput" not in args.skip:
        res["throughput"] = throughput(args)
    if "memory" not in args.skip:
        res["memory"] = memory(args)
    if "recurrent" not in args.skip:
        res["chunked_vs_recurrent"] = chunked_vs_recurrent(args)
    if "decode" not in args.skip:
        res["decode"] = decode(args)
    res["targets"] = targets(res)
    from xatl.utils.fs import atomic_write_json

    atomic_write_json(args.out, res)
    print(json.dumps(res["targets"], indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

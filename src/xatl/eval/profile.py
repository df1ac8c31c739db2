"""The cost of inference as the context grows: prefill throughput, per-token decode latency and cache memory.

For each context length L: random tokens are prefilled in chunks of ``prefill_chunk`` (so that a softmax donor
never materialises an L x L attention matrix), then ``decode_steps`` single tokens are decoded with the cache
(after ``warmup_steps`` untimed ones) and the median step time is reported. Memory is the cache the model holds
after the prefill: ``XATLCache.nbytes()`` for students (a fixed-size recurrent state, plus KV caches of any softmax
layers), the key/value tensors of a Hugging Face ``DynamicCache`` for donors.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .profile_config import ProfileConfig

log = logging.getLogger(__name__)

__all__ = ["Point", "ProfileConfig", "cache_kind", "cache_nbytes", "format_profile_table", "measure", "plot_profiles",
           "profile_model", "read_bandwidth", "streamed_weight_bytes"]


@dataclass
class Point:
    """Measurements at one context length."""

    context: int
    prefill_seconds: float | None = None
    prefill_tokens_per_s: float | None = None
    decode_ms_per_token: float | None = None
    """Median wall time of one decode step (batch_size sequences), in milliseconds."""
    decode_ms_p90: float | None = None
    decode_noise: float | None = None
    """(slowest - fastest) / median of the timed decode steps: timing noise (high on a busy machine)."""
    cache_bytes: int | None = None
    cache_kind: str | None = None
    peak_memory_bytes: int | None = None
    """Peak accelerator memory during the point (CUDA only)."""
    floor_ms_per_token: float | None = None
    """The step's memory-traffic floor: (streamed weight bytes + cache bytes) / read bandwidth (``bound``)."""
    fraction_of_floor: float | None = None
    """floor / measured decode step: 1.0 is the hardware limit (``bound``)."""
    error: str | None = None


def cache_nbytes(cache) -> int:
    """Bytes held by a decoding cache: ``nbytes()`` when it has one, else the tensors of its layers."""
    if cache is None:
        return 0
    if hasattr(cache, "nbytes") and callable(cache.nbytes):
        return int(cache.nbytes())
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values", "conv_states", "recurrent_states"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


WEIGHT_BUFFERS = ("weight_int8", "weight_scale", "input_scale")
"""Buffers that are weights a step reads (`xatl.models.quantization.Int8Linear`'s)."""


def streamed_weight_bytes(model) -> int:
    """Bytes of weights one decode step reads: every parameter once (a tied LM head counts once), the int8 weights
    of quantised layers and the packed weights of `PackedLinear` layers, except the token-embedding and
    learned-position tables, of which a step reads one row per sequence."""
    emb = model.get_input_embeddings().weight
    head = getattr(model.get_output_embeddings(), "weight", None)
    seen, total = set(), 0
    for prefix, module in model.named_modules():
        tensors = list(module.named_parameters(recurse=False))
        tensors += [(n, b) for n, b in module.named_buffers(recurse=False) if n in WEIGHT_BUFFERS]
        if isinstance(getattr(module, "packed", None), torch.Tensor):
            tensors.append(("packed", module.packed))
        for name, t in tensors:
            full = f"{prefix}.{name}" if prefix else name
            if id(t) in seen:
                continue
            seen.add(id(t))
            if (t is emb and t is not head) or "embed_positions" in full or full.endswith("wpe.weight"):
                continue
            total += t.numel() * t.element_size()
    return total


@functools.lru_cache(maxsize=8)
def read_bandwidth(device: torch.device, nbytes: int = 1 << 30, repeats: int = 10) -> float:
    """The machine's read bandwidth in bytes/s: the best of ``repeats`` sums over a float32 buffer of ``nbytes``
    (with torch's threads, as a decode step has). Measured once per process and device, so that every model of
    one profile is held against the same figure."""
    x = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=device)
    best = float("inf")
    for _ in range(repeats + 1):                 # the first one warms the pages and the threads
        _sync(device)
        t = time.perf_counter()
        x.sum()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best


def cache_kind(model, cache) -> str:
    """"recurrent state", "KV cache", "state + KV cache" (hybrid student) or "none"."""
    if cache is None:
        return "none"
    mixers = getattr(model.config, "layer_mixers", None)
    if mixers is None:
        return "KV cache"
    from ..mixers.registry import is_recurrent

    softmax = sum(not is_recurrent(m) for m in mixers)                 # layers whose KV cache grows
    return "KV cache" if softmax == len(mixers) else "state + KV cache" if softmax else "recurrent state"


def _cache_of(out):
    return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else \
        getattr(out, "past_key_values", None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure(model, context: int, cfg: ProfileConfig) -> Point:
    """Prefill ``context`` random tokens, then time decode steps with the cache."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed + context)
    ids = torch.randint(0, model.config.vocab_size, (cfg.batch_size, context), generator=g).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    point = Point(context)
    _sync(device)
    t0 = time.perf_counter()
    cache, out = None, None
    for s in range(0, context, cfg.prefill_chunk):
        out = model(input_ids=ids[:, s:s + cfg.prefill_chunk], cache=cache, use_cache=True)
        cache = _cache_of(out)
        if cache is None:
            return _measure_without_cache(model, ids, point, cfg)
    _sync(device)
    point.prefill_seconds = time.perf_counter() - t0
    point.prefill_tokens_per_s = context * cfg.batch_size / point.prefill_seconds
    point.cache_bytes, point.cache_kind = cache_nbytes(cache), cache_kind(model, cache)
    token = out.logits[:, -1:].argmax(-1)                                    # (B, 1)
    times = []
    for step in range(cfg.warmup_steps + cfg.decode_steps):
        _sync(device)
        t = time.perf_counter()
        out = model(input_ids=token, cache=cache, use_cache=True)
        token = out.logits[:, -1:].argmax(-1)
        _sync(device)
        if step >= cfg.warmup_steps:
            times.append((time.perf_counter() - t) * 1e3)
    _finish(point, times, device)
    return point


def _measure_without_cache(model, ids, point: Point, cfg: ProfileConfig) -> Point:
    """Fallback for a model whose forward returns no cache: each token costs a full forward over the context."""
    log.warning("%s returned no cache from forward(use_cache=True): decoding is timed as full recomputation",
                type(model).__name__)
    device = ids.device
    times = []
    for step in range(1 + min(cfg.decode_steps, 2)):
        _sync(device)
        t = time.perf_counter()
        model(input_ids=ids)
        _sync(device)
        if step:
            times.append((time.perf_counter() - t) * 1e3)
    point.prefill_seconds = times[0] / 1e3
    point.prefill_tokens_per_s = ids.numel() / point.prefill_seconds
    point.cache_bytes, point.cache_kind = 0, "none (full recompute per token)"
    _finish(point, times, device)
    return point


def _finish(point: Point, times: list[float], device: torch.device) -> None:
    point.decode_ms_per_token = statistics.median(times)
    point.decode_ms_p90 = sorted(times)[max(0, int(round(0.9 * len(times))) - 1)]
    point.decode_noise = (max(times) - min(times)) / point.decode_ms_per_token if point.decode_ms_per_token else None
    if device.type == "cuda":
        point.peak_memory_bytes = torch.cuda.max_memory_allocated(device)


def profile_model(model, cfg: ProfileConfig | None = None, *, name: str = "model", progress: bool = True) -> dict:
    """{"name", "model_type", "parameters", "dtype", "device", "points": [Point as dict, ...]}."""
    cfg = cfg or ProfileConfig()
    model.eval()
    points = []
    for context in tqdm(cfg.contexts, desc=f"profile {name}", disable=not progress, leave=False):
        try:
            points.append(measure(model, context, cfg))
        except (RuntimeError, MemoryError, IndexError) as e:    # out of memory, positions past a learned table
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            log.warning("%s at context %d: %s", name, context, first)
            points.append(Point(context, error=f"{type(e).__name__}: {first}"))
    p = next(model.parameters())
    out = {"name": name, "model_type": getattr(model.config, "model_type", None),
           "parameters": sum(x.numel() for x in model.parameters()), "dtype": str(p.dtype).replace("torch.", ""),
           "device": str(p.device), "points": [asdict(pt) for pt in points]}
    if cfg.bound:
        out.update(_floors(model, out["points"], read_bandwidth(p.device, cfg.bandwidth_buffer)),
                   bandwidth_buffer_bytes=cfg.bandwidth_buffer)
    return out


def _floors(model, points: list[dict], bandwidth: float) -> dict:
    """The memory-traffic floor of every point (in place) and what it rests on."""
    weights = streamed_weight_bytes(model)
    for pt in points:
        if pt["decode_ms_per_token"]:
            pt["floor_ms_per_token"] = (weights + (pt["cache_bytes"] or 0)) / bandwidth * 1e3
            pt["fraction_of_floor"] = pt["floor_ms_per_token"] / pt["decode_ms_per_token"]
    return {"read_bandwidth_bytes_per_s": bandwidth, "streamed_weight_bytes": weights}


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_profile_table(profiles: list[dict]) -> str:
    """One row per (model, context): prefill tok/s, decode ms/token, cache MiB; with the memory-traffic floor
    (``bound``) also the floor and the fraction of it reached, and a line per model on what the floor rests on."""
    bound = any("read_bandwidth_bytes_per_s" in prof for prof in profiles)
    extra = ["floor ms", "of floor"] if bound else []
    rows = [["model", "context", "prefill tok/s", "decode ms/token", *extra, "cache memory", "cache"]]
    for prof in profiles:
        for pt in prof["points"]:
            if pt["error"]:
                rows.append([prof["name"], str(pt["context"]), "-", "-", *["-"] * len(extra), "-", pt["error"][:40]])
                continue
            floor = [f"{pt['floor_ms_per_token']:.2f}", f"{pt['fraction_of_floor']:.2f}x"] \
                if bound and pt.get("floor_ms_per_token") else ["-"] * len(extra)
            rows.append([prof["name"], str(pt["context"]), f"{pt['prefill_tokens_per_s']:.0f}",
                         f"{pt['decode_ms_per_token']:.2f}", *floor, human_bytes(pt["cache_bytes"]), pt["cache_kind"]])
    numeric = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.rjust(w) if 0 < i < numeric else c.ljust(w)
                                for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows)
    for prof in profiles:
        if "read_bandwidth_bytes_per_s" in prof:
            table += (f"\n{prof['name']}: floor = ({human_bytes(prof['streamed_weight_bytes'])} of weights + the "
                      f"cache) / {prof['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s read bandwidth (a sum over "
                      f"{human_bytes(prof['bandwidth_buffer_bytes'])})")
    noise = max_noise(profiles)
    if noise > NOISY:
        table += (f"\nwarning: decode step times vary by up to {noise:.0%} of their median (a busy machine?); "
                  "latency differences smaller than that are not established")
    return table


NOISY = 0.25
"""Decode timing noise above which a plot and the table warn that small differences are not established."""


def max_noise(profiles: list[dict]) -> float:
    return max((p.get("decode_noise") or 0.0 for prof in profiles for p in prof["points"]), default=0.0)


PLOTS = {
    "decode_latency.png": ("decode_ms_per_token", 1.0, "decode latency (ms / token)"),
    "cache_memory.png": ("cache_bytes", 2.0 ** -20, "cache memory (MiB)"),
    "prefill_throughput.png": ("prefill_tokens_per_s", 1.0, "prefill throughput (tokens / s)"),
}


def plot_profiles(profiles: list[dict], out_dir: str | Path) -> list[Path]:
    """Write one PNG per measure (against context length, log-log) into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for filename, (key, scale, label) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for prof in profiles:
            pts = [p for p in prof["points"] if p.get(key) is not None]
            if pts:
                ax.plot([p["context"] for p in pts], [p[key] * scale for p in pts], marker="o", label=prof["name"])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        noise = max_noise(profiles)
        if key == "decode_ms_per_token" and noise > NOISY:
            ax.set_title(f"timing noise up to {noise:.0%} of the median: smaller differences are not established",
                         fontsize=8, color="tab:red")
        fig.tight_layout()
        path = Path(out_dir) / filename
        fig.savefig(path)
        plt.close(fig)
        out.append(path)
    return out

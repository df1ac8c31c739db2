"""Optional GPU kernels: flash-linear-attention (``fla``) Triton kernels for the chunked forms.

Used only when a mixer asks for them (``kernels="fla"``), the inputs are on CUDA and ``fla`` imports; the PyTorch
forms stay the default and the reference. fla's layout is (B, T, H, .) and its scale is applied inside the kernel:
we pass ``scale=1`` because our ops take queries already scaled. Never exercised on CPU.
"""

from __future__ import annotations

import importlib
import logging

import torch

log = logging.getLogger(__name__)
_KERNELS: dict | None = None   # {"gla": fn, "simple_gla": fn}, {} when fla is unavailable, None before the first try
_DELTA_KERNELS: dict | None = None   # {"delta_rule": fn, "gated_delta_rule": fn}, the same way (newer fla only)


def _kernels() -> dict:
    global _KERNELS
    if _KERNELS is None:
        try:
            _KERNELS = {"gla": importlib.import_module("fla.ops.gla").chunk_gla,
                        "simple_gla": importlib.import_module("fla.ops.simple_gla").chunk_simple_gla}
        except Exception as e:   # ImportError, or a Triton/driver error raised while importing
            log.info("fla kernels unavailable (%s); using the PyTorch chunked forms", e)
            _KERNELS = {}
    return _KERNELS


def _delta_kernels() -> dict:
    global _DELTA_KERNELS
    if _DELTA_KERNELS is None:
        try:
            _DELTA_KERNELS = {"delta_rule": importlib.import_module("fla.ops.delta_rule").chunk_delta_rule,
                              "gated_delta_rule": importlib.import_module("fla.ops.gated_delta_rule")
                              .chunk_gated_delta_rule}
        except Exception as e:   # as above
            log.info("fla delta-rule kernels unavailable (%s); using the PyTorch chunked form", e)
            _DELTA_KERNELS = {}
    return _DELTA_KERNELS


def fla_usable(x: torch.Tensor) -> bool:
    """True when ``x`` is on CUDA and fla imports."""
    return x.is_cuda and bool(_kernels())


def _to_fla(*ts):
    return [t.transpose(1, 2).contiguous() for t in ts]        # (B, H, T, .) -> (B, T, H, .)


def fla_chunk_gla(q, k, v, g, initial_state=None, output_final_state=False):
    """fla ``chunk_gla``; q, k, g (B, H, T, K), v (B, H, T, V) -> (o (B, H, T, V), state (B, H, K, V) or None)."""
    qf, kf, vf, gf = _to_fla(q, k, v, g)
    o, s = _kernels()["gla"](qf, kf, vf, gf, scale=1.0, initial_state=initial_state,
                             output_final_state=output_final_state)
    return o.transpose(1, 2).to(v.dtype), s


def fla_chunk_simple_gla(q, k, v, g, initial_state=None, output_final_state=False):
    """fla ``chunk_simple_gla``; g (B, H, T) scalar log decay per head and step."""
    qf, kf, vf = _to_fla(q, k, v)
    o, s = _kernels()["simple_gla"](qf, kf, vf, g=g.transpose(1, 2).contiguous(), scale=1.0,
                                    initial_state=initial_state, output_final_state=output_final_state)
    return o.transpose(1, 2).to(v.dtype), s


def fla_delta_usable(x: torch.Tensor) -> bool:
    """True when ``x`` is on CUDA and fla's delta-rule kernels import."""
    return x.is_cuda and bool(_delta_kernels())


def fla_chunk_delta_rule(q, k, v, beta, g=None, initial_state=None, output_final_state=False):
    """fla ``chunk_delta_rule`` (g None) or ``chunk_gated_delta_rule``; q, k (B, H, T, K), v (B, H, T, V), beta
    and g (B, H, T), state (B, H, K, V) (fla's default layout). Not yet run on a GPU by the tests."""
    qf, kf, vf = (t.to(v.dtype) for t in _to_fla(q, k, v))                  # fla wants one dtype for q, k, v
    bf = beta.transpose(1, 2).contiguous().to(v.dtype)
    kw = dict(scale=1.0, initial_state=initial_state, output_final_state=output_final_state)
    if g is None:
        o, s = _delta_kernels()["delta_rule"](qf, kf, vf, bf, **kw)
    else:
        o, s = _delta_kernels()["gated_delta_rule"](qf, kf, vf, g.transpose(1, 2).contiguous().float(), bf, **kw)
    return o.transpose(1, 2).to(v.dtype), s

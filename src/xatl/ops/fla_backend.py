"""Optional GPU kernels: flash-linear-attention (``fla``) Triton kernels for the chunked forms.

Used only when a mixer asks for them (``kernels="fla"`` or ``"auto"``), the inputs are on CUDA and ``fla``
imports; the PyTorch forms stay the default and the reference. Tested against them (outputs, final states,
gradients, initial state included) with fla-core 0.6.0 under Triton's CPU interpreter (``tests/ops/
test_fla_parity.py``); on a GPU by ``make bench-gpu``.

Layouts, passed explicitly, never assumed from fla's defaults (which have changed between releases):

* xatl's tensors are (B, H, T, .); fla's are (B, T, H, .): transposed both ways here.
* The recurrent state is (B, H, K, V) in both: ``state_v_first=False`` (``transpose_state_layout`` in older
  releases) and ``head_first=False`` are passed wherever the kernel takes them, and the final state's shape is
  checked.
* Our ops take queries already scaled, so ``scale=1``.
* Linear attention runs as simple GLA with a zero log-decay (``linear_attention._fla_linear_attn``).
* The delta rule runs as fla's gated delta rule with a zero log-decay: fla's plain ``chunk_delta_rule`` refuses
  float32 inputs, the gated kernel does not, and with g = 0 the two are the same recurrence.
"""

from __future__ import annotations

import importlib
import inspect
import logging

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)
TESTED_FLA = "0.6.0"     # the fla-core release the parity tests ran against
_KERNELS: dict | None = None   # {"gla": fn, "simple_gla": fn}, {} when fla is unavailable, None before the first try
_DELTA_KERNELS: dict | None = None   # {"gated_delta_rule": fn}, the same way (newer fla only)
_LAYOUT_ARGS: dict = {}              # kernel -> the layout keyword arguments it takes


def _load(modules: dict[str, tuple[str, str]], what: str) -> dict:
    try:
        return {k: getattr(importlib.import_module(m), fn) for k, (m, fn) in modules.items()}
    except Exception as e:   # ImportError, or a Triton/driver error raised while importing
        log.info("fla %s kernels unavailable (%s); using the PyTorch chunked forms", what, e)
        return {}


def _kernels() -> dict:
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _load({"gla": ("fla.ops.gla", "chunk_gla"),
                          "simple_gla": ("fla.ops.simple_gla", "chunk_simple_gla")}, "GLA")
    return _KERNELS


def _delta_kernels() -> dict:
    global _DELTA_KERNELS
    if _DELTA_KERNELS is None:
        _DELTA_KERNELS = _load({"gated_delta_rule": ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule")},
                               "delta-rule")
    return _DELTA_KERNELS


def _runs_on(x: torch.Tensor) -> bool:
    """Whether fla's kernels can take ``x``: CUDA tensors (the parity tests also let CPU tensors through, for
    Triton's interpreter)."""
    return x.is_cuda


def fla_usable(x: torch.Tensor) -> bool:
    """True when ``x`` is on CUDA and fla imports."""
    return _runs_on(x) and bool(_kernels())


def fla_delta_usable(x: torch.Tensor) -> bool:
    """True when ``x`` is on CUDA and fla's delta-rule kernels import."""
    return _runs_on(x) and bool(_delta_kernels())


def layout_args(fn) -> dict:
    """The keyword arguments that pin ``fn``'s layout to ours, for those it takes: (B, T, H, .) tensors and a
    (B, H, K, V) state."""
    if fn not in _LAYOUT_ARGS:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):       # a compiled or wrapped callable: pass nothing, the shape check stays
            params = {}
        wanted = {"state_v_first": False, "transpose_state_layout": False, "head_first": False}
        _LAYOUT_ARGS[fn] = {k: v for k, v in wanted.items() if k in params}
    return _LAYOUT_ARGS[fn]


def _call(fn, *args, state_shape: tuple, **kw):
    """``fn(*args, **kw)`` with our layout pinned; checks that the final state is (B, H, K, V)."""
    o, s = fn(*args, **kw, **layout_args(fn))
    if s is not None and tuple(s.shape) != state_shape:
        raise ConfigError(f"flash-linear-attention returned a state of shape {tuple(s.shape)} where {state_shape} "
                          f"(B, H, K, V) was asked: this fla release lays states out differently; install "
                          f"fla-core=={TESTED_FLA} or use kernels='torch'")
    return o, s


def _to_fla(*ts):
    return [t.transpose(1, 2).contiguous() for t in ts]        # (B, H, T, .) -> (B, T, H, .)


def _state_in(initial_state):
    return initial_state.float() if initial_state is not None else None   # fla keeps states in float32


def fla_chunk_gla(q, k, v, g, initial_state=None, output_final_state=False):
    """fla ``chunk_gla``; q, k, g (B, H, T, K), v (B, H, T, V) -> (o (B, H, T, V), state (B, H, K, V) or None)."""
    B, H, _, K = q.shape
    qf, kf, vf, gf = _to_fla(q, k, v, g)
    o, s = _call(_kernels()["gla"], qf, kf, vf, gf, scale=1.0, initial_state=_state_in(initial_state),
                 output_final_state=output_final_state, state_shape=(B, H, K, v.shape[-1]))
    return o.transpose(1, 2).to(v.dtype), s


def fla_chunk_simple_gla(q, k, v, g, initial_state=None, output_final_state=False):
    """fla ``chunk_simple_gla``; g (B, H, T) scalar log decay per head and step."""
    B, H, _, K = q.shape
    qf, kf, vf = _to_fla(q, k, v)
    o, s = _call(_kernels()["simple_gla"], qf, kf, vf, g=g.transpose(1, 2).contiguous(), scale=1.0,
                 initial_state=_state_in(initial_state), output_final_state=output_final_state,
                 state_shape=(B, H, K, v.shape[-1]))
    return o.transpose(1, 2).to(v.dtype), s


def fla_chunk_delta_rule(q, k, v, beta, g=None, initial_state=None, output_final_state=False):
    """fla ``chunk_gated_delta_rule`` (g None: a zero log-decay, the plain delta rule); q, k (B, H, T, K),
    v (B, H, T, V), beta and g (B, H, T), state (B, H, K, V)."""
    B, H, T, K = q.shape
    qf, kf, vf = (t.to(v.dtype) for t in _to_fla(q, k, v))                  # fla wants one dtype for q, k, v
    bf = beta.transpose(1, 2).contiguous().to(v.dtype)
    gf = (g.transpose(1, 2).contiguous().float() if g is not None
          else torch.zeros(B, T, H, device=q.device, dtype=torch.float32))
    o, s = _call(_delta_kernels()["gated_delta_rule"], qf, kf, vf, gf, bf, scale=1.0,
                 initial_state=_state_in(initial_state), output_final_state=output_final_state,
                 use_qk_l2norm_in_kernel=False, state_shape=(B, H, K, v.shape[-1]))
    return o.transpose(1, 2).to(v.dtype), s

"""Every op's three forms agree: naive == chunked == recurrent on outputs, final states and input gradients
(initial state included), in float32 at tight tolerance, for T in {1, 7, chunk, 3 * chunk + 5}, batch 2; and a
chunked prefill continued by recurrent steps equals one chunked pass."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from xatl.ops.delta_rule import chunk_delta_rule, naive_delta_rule, recurrent_delta_rule
from xatl.ops.gla import chunk_gla, naive_gla, recurrent_gla
from xatl.ops.linear_attention import chunk_linear_attn, naive_linear_attn, recurrent_linear_attn
from xatl.ops.retention import chunk_retention, naive_retention, recurrent_retention
from xatl.ops.selective_scan import chunk_selective_scan, naive_selective_scan, recurrent_selective_scan
from xatl.ops.sliding_window import chunk_swa, naive_swa, recurrent_swa
from xatl.ops.ssd import chunk_ssd, naive_ssd, recurrent_ssd
from xatl.ops.window_linear import chunk_window_linear, naive_window_linear, recurrent_window_linear
from xatl.ops.window_linear_cache import (
    chunk_window_linear_cache,
    naive_window_linear_cache,
    recurrent_window_linear_cache,
)

CHUNK = 16
LENGTHS = (1, 7, CHUNK, 3 * CHUNK + 5)
B, H, K, V = 2, 3, 8, 6


def _linear(T, g):
    q, k = (F.elu(torch.randn(B, H, T, K, generator=g)) + 1 for _ in range(2))
    state = (torch.rand(B, H, K, V, generator=g), torch.rand(B, H, K, generator=g) + 1)
    return [q, k, torch.randn(B, H, T, V, generator=g)], {}, state


def _retention(T, g):
    return ([torch.randn(B, H, T, K, generator=g) for _ in range(2)] + [torch.randn(B, H, T, V, generator=g)],
            {"log_decay": torch.log(1 - 2.0 ** (-5.0 - torch.arange(H, dtype=torch.float32)))},
            torch.randn(B, H, K, V, generator=g))


def _gla(T, g):
    gate = F.logsigmoid(3 * torch.randn(B, H, T, K, generator=g)) / 4          # strong and weak decays mixed
    return ([torch.randn(B, H, T, K, generator=g) for _ in range(2)] + [torch.randn(B, H, T, V, generator=g), gate],
            {}, torch.randn(B, H, K, V, generator=g))


def _ssd(T, g):
    gate = F.logsigmoid(2 * torch.randn(B, H, T, generator=g))
    return ([torch.randn(B, H, T, K, generator=g) for _ in range(2)] + [torch.randn(B, H, T, V, generator=g), gate],
            {}, torch.randn(B, H, K, V, generator=g))


def _delta_rule(T, g, gated=False):
    """L2-normalised keys and queries scaled by K^-0.5 (as the deltanet mixers), beta in (0, 1)."""
    q, k = torch.randn(B, H, T, K, generator=g) * K**-0.5, F.normalize(torch.randn(B, H, T, K, generator=g), dim=-1)
    inputs = [q, k, torch.randn(B, H, T, V, generator=g), torch.sigmoid(torch.randn(B, H, T, generator=g))]
    if gated:
        inputs.append(F.logsigmoid(3 * torch.randn(B, H, T, generator=g)))
    return inputs, {}, torch.randn(B, H, K, V, generator=g)


def _s6(T, g, dt_scale=0.5):
    D, N = 5, 4
    return ([torch.randn(B, T, N, generator=g), torch.randn(B, T, N, generator=g), torch.randn(B, T, D, generator=g),
             torch.rand(B, T, D, generator=g) * dt_scale, -torch.rand(D, N, generator=g) * 4 - 0.5],
            {}, torch.randn(B, D, N, generator=g))


def _swa(T, g, window=5, Hkv=1):
    key_mask = torch.ones(B, T, dtype=torch.bool)
    key_mask[1, : min(3, T - 1)] = False                                         # left padding in row 1
    state = (torch.randn(B, Hkv, window, K, generator=g), torch.randn(B, Hkv, window, V, generator=g),
             torch.rand(B, window, generator=g) > 0.3)
    return ([torch.randn(B, H, T, K, generator=g), torch.randn(B, Hkv, T, K, generator=g),
             torch.randn(B, Hkv, T, V, generator=g)], {"window": window, "key_mask": key_mask}, state)


def _window_linear(T, g, window=5, Hkv=1, Fdim=4, decay=False, lin_keys=False):
    """GQA (3 query heads over 1 K/V head), left padding in row 1, a learned-looking positive key map; with
    ``decay`` a per-head decay of the linear part (one head at gamma = 1)."""
    W = torch.randn(H, K, Fdim, generator=g)
    (inputs, kwargs, state) = _swa(T, g, window, Hkv)
    fq = torch.softmax(torch.randn(B, H, T, Fdim, generator=g), -1)
    factor = torch.rand(H, generator=g)
    state = state + (torch.rand(B, H, Fdim, V, generator=g), torch.rand(B, H, Fdim, generator=g) + 0.5)
    inputs = inputs + [fq, lambda k: torch.softmax(torch.einsum("bhtd,hdf->bhtf", k, W), -1), factor]
    if decay:
        kwargs["log_decay"] = torch.tensor([0.0, -0.05, -0.7])[:H]
    if lin_keys:                                     # psi sees other keys (e.g. unrotated); the state keeps theirs
        kwargs["k_lin"] = torch.randn(B, Hkv, T, K, generator=g)
        state = state + (torch.randn(B, Hkv, window, K, generator=g),)
    return inputs, kwargs, state


def _window_linear_sinks(T, g, sinks=3, held=1, **kw):
    """As ``_window_linear`` plus ``sinks`` sink slots, the state holding the first ``held`` (in row 0; row 1 none),
    scored against their own queries (as the mixer's, rotated at a capped position)."""
    inputs, kwargs, state = _window_linear(T, g, **kw)
    Hkv = kw.get("Hkv", 1)
    held = (torch.arange(sinks) < torch.tensor([[held], [0]])).expand(B, sinks)
    m = held[:, None, :, None]
    state = state + (torch.randn(B, Hkv, sinks, K, generator=g) * m, torch.randn(B, Hkv, sinks, V, generator=g) * m,
                     held)
    kwargs.update(sinks=sinks, q_sink=torch.randn(B, H, T, K, generator=g))
    return inputs, kwargs, state


def _window_linear_cache(T, g, size=3, evict=1, decay=False, lin_keys=False, pinned=0, far=0, **kw):
    """As ``_window_linear`` plus a sparse cache (``size`` kept, ``evict`` at once) per query head; the state's
    cache holds two pairs less than its capacity (the same slots in every head, as the op keeps them), from up to
    40 steps back; with ``far`` the cached pairs further back than that are scored by their own queries."""
    inputs, kwargs, state = _window_linear(T, g, decay=decay, **kw)
    cap = size + evict
    valid = torch.ones(B, H, cap, dtype=torch.bool)
    valid[:, :, [0, -1]] = False
    state = state + (torch.randn(B, H, cap, K, generator=g) * valid[..., None],
                     torch.randn(B, H, cap, V, generator=g) * valid[..., None], valid,
                     -torch.randint(1, 40, (B, H, cap), generator=g) * valid)
    if lin_keys:
        kwargs["k_lin"] = torch.randn(B, kw.get("Hkv", 1), T, K, generator=g)
        state = state + (torch.randn(B, kw.get("Hkv", 1), kw.get("window", 5), K, generator=g),
                         torch.randn(B, H, cap, K, generator=g) * valid[..., None])
    kwargs.update(size=size, evict=evict, pinned=pinned)
    if pinned:                                                   # sinks scored against their own queries
        kwargs["q_pinned"] = torch.randn(B, H, T, K, generator=g)
    if far:
        kwargs.update(far=far, q_far=torch.randn(B, H, T, K, generator=g))
    return inputs, kwargs, state


OPS = {
    "linear": (naive_linear_attn, chunk_linear_attn, recurrent_linear_attn, _linear),
    "retention": (naive_retention, chunk_retention, recurrent_retention, _retention),
    "gla": (naive_gla, chunk_gla, recurrent_gla, _gla),
    "gla_recursive_scores": (naive_gla, partial(chunk_gla, fast=False), recurrent_gla, _gla),
    "ssd": (naive_ssd, chunk_ssd, recurrent_ssd, _ssd),
    "selective_scan": (naive_selective_scan, chunk_selective_scan, recurrent_selective_scan, _s6),
    "selective_scan_large_dt": (naive_selective_scan, chunk_selective_scan, recurrent_selective_scan,
                                partial(_s6, dt_scale=8.0)),                     # chunks beyond the exp-trick bound
    "swa": (naive_swa, chunk_swa, recurrent_swa, _swa),
    "delta_rule": (naive_delta_rule, chunk_delta_rule, recurrent_delta_rule, _delta_rule),
    "gated_delta_rule": (naive_delta_rule, chunk_delta_rule, recurrent_delta_rule, partial(_delta_rule, gated=True)),
    "window_linear": (naive_window_linear, chunk_window_linear, recurrent_window_linear, _window_linear),
    "window_linear_w1": (naive_window_linear, chunk_window_linear, recurrent_window_linear,
                         partial(_window_linear, window=1)),
    "window_linear_wide": (naive_window_linear, chunk_window_linear, recurrent_window_linear,
                           partial(_window_linear, window=CHUNK + 3, Hkv=3)),
    "window_linear_decay": (naive_window_linear, chunk_window_linear, recurrent_window_linear,
                            partial(_window_linear, decay=True)),
    "window_linear_lin_keys": (naive_window_linear, chunk_window_linear, recurrent_window_linear,
                               partial(_window_linear, decay=True, lin_keys=True)),
    "window_linear_sinks": (naive_window_linear, chunk_window_linear, recurrent_window_linear,
                            partial(_window_linear_sinks, decay=True, lin_keys=True)),
    "window_linear_sinks_full": (naive_window_linear, chunk_window_linear, recurrent_window_linear,
                                 partial(_window_linear_sinks, sinks=2, held=2, window=CHUNK + 3, Hkv=3)),
    "window_linear_cache": (naive_window_linear_cache, chunk_window_linear_cache, recurrent_window_linear_cache,
                            _window_linear_cache),
    "window_linear_cache_decay": (naive_window_linear_cache, chunk_window_linear_cache,
                                  recurrent_window_linear_cache, partial(_window_linear_cache, decay=True)),
    "window_linear_cache_wide": (naive_window_linear_cache, chunk_window_linear_cache,
                                 recurrent_window_linear_cache, partial(_window_linear_cache, size=1,
                                                                        window=CHUNK + 3, Hkv=3)),
    "window_linear_cache_batched": (naive_window_linear_cache, chunk_window_linear_cache,
                                    recurrent_window_linear_cache, partial(_window_linear_cache, size=2, evict=5,
                                                                           decay=True)),
    "window_linear_cache_lin_keys": (naive_window_linear_cache, chunk_window_linear_cache,
                                     recurrent_window_linear_cache, partial(_window_linear_cache, size=2, evict=3,
                                                                            decay=True, lin_keys=True)),
    "window_linear_cache_sinks": (naive_window_linear_cache, chunk_window_linear_cache, recurrent_window_linear_cache,
                                  partial(_window_linear_cache, size=3, evict=1, pinned=3, decay=True)),
    "window_linear_cache_sinks_lola": (naive_window_linear_cache, chunk_window_linear_cache,
                                       recurrent_window_linear_cache, partial(_window_linear_cache, size=3, evict=2,
                                                                              pinned=1, decay=True, lin_keys=True)),
    "window_linear_cache_far": (naive_window_linear_cache, chunk_window_linear_cache, recurrent_window_linear_cache,
                                partial(_window_linear_cache, size=3, evict=2, pinned=1, decay=True, lin_keys=True,
                                        far=9)),
    "window_linear_cache_big_evict": (naive_window_linear_cache, chunk_window_linear_cache,
                                      recurrent_window_linear_cache, partial(_window_linear_cache, size=2,
                                                                             evict=CHUNK + 3)),
}


def _state_list(s):
    return list(s) if isinstance(s, tuple) else [s]


def _run(fn, inputs, kwargs, state, with_state: bool):
    """(outputs and final-state tensors, gradients of a scalar loss wrt the float inputs and the initial state)."""
    xs = [x.clone().requires_grad_() if torch.is_tensor(x) else x for x in inputs]
    st = [s.clone().requires_grad_() if s.is_floating_point() else s for s in _state_list(state)]
    init = (tuple(st) if isinstance(state, tuple) else st[0]) if with_state else None
    o, final = fn(*xs, **kwargs, initial_state=init, output_final_state=True)
    finals = [f for f in _state_list(final) if f.is_floating_point()]
    loss = (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() + sum(f.square().mean() for f in finals)
    wrt = [x for x in xs if torch.is_tensor(x)] + ([s for s in st if s.requires_grad] if with_state else [])
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return [o] + _state_list(final), grads


def _close(a, b, what):
    if not b.is_floating_point():
        assert torch.equal(a, b), what
        return
    tol = 5e-5 * max(1.0, b.abs().max().item())                                # fp32: seen <= 7e-6
    assert (a.float() - b.float()).abs().max().item() <= tol, what


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_forms_agree(op, T, with_state):
    naive, chunk, recurrent, make = OPS[op]
    inputs, kwargs, state = make(T, torch.Generator().manual_seed(T))
    ref_out, ref_grad = _run(naive, inputs, kwargs, state, with_state)
    for name, fn in (("chunked", partial(chunk, chunk_size=CHUNK)), ("recurrent", recurrent)):
        out, grad = _run(fn, inputs, kwargs, state, with_state)
        for i, (a, b) in enumerate(zip(out, ref_out)):
            _close(a, b, f"{name} output/state {i} differs from naive")
        for i, (a, b) in enumerate(zip(grad, ref_grad)):
            if b is None:
                assert a is None or a.abs().max() == 0, f"{name} gradient {i}"
            else:
                _close(a, b, f"{name} gradient {i} differs from naive")


@pytest.mark.parametrize("op", sorted(OPS))
def test_chunked_prefill_then_steps_equals_one_pass(op):
    _, chunk, recurrent, make = OPS[op]
    T, P = 3 * CHUNK + 5, 2 * CHUNK + 3
    inputs, kwargs, state = make(T, torch.Generator().manual_seed(1))
    time_dim = 1 if op.startswith("selective") else 2

    def part(sl):
        xs = [x.narrow(time_dim, sl.start, sl.stop - sl.start) if torch.is_tensor(x) and x.dim() >= 3 else x
              for x in inputs]
        kw = {k: (v[:, sl] if k == "key_mask" else v[:, :, sl] if k in ("k_lin", "q_sink", "q_pinned", "q_far") else v)
              for k, v in kwargs.items()}
        return xs, kw

    full, _ = chunk(*inputs, **kwargs, chunk_size=CHUNK, initial_state=state, output_final_state=True)
    xs, kw = part(slice(0, P))
    o1, s = chunk(*xs, **kw, chunk_size=CHUNK, initial_state=state, output_final_state=True)
    outs = [o1]
    for t in range(P, T):
        xs, kw = part(slice(t, t + 1))
        o, s = recurrent(*xs, **kw, initial_state=s, output_final_state=True)
        outs.append(o)
    _close(torch.cat(outs, time_dim), full, "prefill + steps differs from one pass")


def test_gla_chunked_is_exact_for_extreme_gates():
    """Per-channel decays of exp(-60) per step: the factorised intra-chunk scores must not overflow."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 8, generator=g) for _ in range(3))
    gate = torch.where(torch.rand(1, 2, 40, 8, generator=g) < 0.5, -60.0, -1e-3)
    o, s = chunk_gla(q, k, v, gate, chunk_size=CHUNK, output_final_state=True)
    ref, ref_s = recurrent_gla(q, k, v, gate, output_final_state=True)
    assert torch.isfinite(o).all()
    _close(o, ref, "output")
    _close(s, ref_s, "state")


def test_selective_scan_memory_is_per_chunk():
    """The custom backward saves the inputs and one state per chunk, not every state."""
    from xatl.ops import selective_scan as ss

    C, Bm, x, dt, A = (t.requires_grad_() for t in _s6(64, torch.Generator().manual_seed(0))[0])
    y, _ = chunk_selective_scan(C, Bm, x, dt, A, chunk_size=CHUNK)
    node = y.grad_fn
    assert type(node).__name__.startswith(ss._ChunkScan.__name__)
    starts = node.saved_tensors[-1]
    assert starts.shape == (64 // CHUNK, B, 5, 4)

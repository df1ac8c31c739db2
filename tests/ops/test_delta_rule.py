"""The delta rule's forms (xatl.ops.delta_rule) in float64: naive == chunked == recurrent on outputs, final states
and gradients (q, k, v, beta, g, initial state) to 1e-13, for several chunk sizes, lengths that are not multiples
of them, plain and gated; properties of the rule itself (beta = 0 writes nothing; with beta = 1 and orthonormal
keys the state is an exact key -> value memory that overwrites); strong gates stay finite. The float32 checks of
the same forms (and prefill + steps) are in test_ops_forms.py, with every other op."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xatl.ops.delta_rule import chunk_delta_rule, naive_delta_rule, recurrent_delta_rule

B, H, K, V = 2, 3, 8, 6
F64 = torch.float64


def _inputs(T: int, gated: bool, seed: int = 0, dtype=F64):
    """[q, k, v, beta, g or None], initial state: keys L2-normalised, queries scaled by K^-0.5 (as the mixers)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=dtype)                  # noqa: E731
    q, k = rnd(B, H, T, K) * K**-0.5, F.normalize(rnd(B, H, T, K), dim=-1)
    gate = F.logsigmoid(3 * rnd(B, H, T)) if gated else None                    # strong and weak decays mixed
    return [q, k, rnd(B, H, T, V), torch.sigmoid(rnd(B, H, T)), gate], rnd(B, H, K, V)


def _run(fn, inputs, state):
    """(o, final state), gradients of a fixed scalar loss wrt every input tensor and the initial state."""
    xs = [x.clone().requires_grad_() if x is not None else None for x in inputs]
    s0 = state.clone().requires_grad_()
    o, final = fn(*xs, initial_state=s0, output_final_state=True)
    loss = (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() + final.square().mean()
    wrt = [x for x in xs if x is not None] + [s0]
    return (o, final), torch.autograd.grad(loss, wrt)


def _err(a, b) -> float:
    return (a - b).abs().max().item() / max(1.0, b.abs().max().item())


@pytest.mark.parametrize("gated", [False, True], ids=["delta", "gated"])
@pytest.mark.parametrize("T,chunk", [(1, 16), (7, 16), (16, 16), (53, 16), (53, 5), (53, 1), (20, 64)])
def test_forms_agree_in_float64(T, chunk, gated):
    inputs, state = _inputs(T, gated, seed=T + chunk)
    ref, ref_grads = _run(naive_delta_rule, inputs, state)
    chunked = lambda *a, **kw: chunk_delta_rule(*a, chunk_size=chunk, **kw)    # noqa: E731
    for name, fn in (("chunked", chunked), ("recurrent", recurrent_delta_rule)):
        out, grads = _run(fn, inputs, state)
        for what, a, b in (("output", out[0], ref[0]), ("final state", out[1], ref[1])):
            assert _err(a, b) <= 1e-13, f"{name} {what}: {_err(a, b):.2e}"          # seen: <= 2.4e-15
        for i, (a, b) in enumerate(zip(grads, ref_grads)):
            assert _err(a, b) <= 1e-13, f"{name} gradient {i}: {_err(a, b):.2e}"


def test_float32_stays_close_to_float64():
    """The float32 chunked form against the float64 reference at a mixer-like size (two chunks of 64 and a rest)."""
    inputs, state = _inputs(150, gated=True, seed=3)
    ref, ref_state = naive_delta_rule(*inputs, initial_state=state, output_final_state=True)
    o, s = chunk_delta_rule(*(x.float() for x in inputs), initial_state=state.float(), output_final_state=True)
    assert o.dtype == torch.float32 and s.dtype == torch.float32
    assert _err(o.double(), ref) <= 1e-5 and _err(s.double(), ref_state) <= 1e-5       # seen: about 1e-6


def test_beta_zero_leaves_the_state_unchanged():
    """No write: the state stays S_0 (decayed by the gate when there is one) and every output reads it."""
    (q, k, v, beta, g), S0 = _inputs(37, gated=True, seed=1)
    zero = torch.zeros_like(beta)
    o, S = chunk_delta_rule(q, k, v, zero, initial_state=S0, output_final_state=True, chunk_size=8)
    assert torch.equal(S, S0)
    torch.testing.assert_close(o, q @ S0, rtol=0, atol=1e-14)
    o, S = chunk_delta_rule(q, k, v, zero, g, initial_state=S0, output_final_state=True, chunk_size=8)
    decay = torch.exp(g.cumsum(-1))                                              # (B, H, T) since the start
    torch.testing.assert_close(S, decay[..., -1, None, None] * S0, rtol=1e-12, atol=0)
    torch.testing.assert_close(o, decay[..., None] * (q @ S0), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gate", ["none", "zero"])
def test_orthonormal_keys_with_beta_one_are_an_exact_memory(gate):
    """With g = 0 and beta = 1 each step replaces what the state returns for k_t by v_t: writing an orthonormal
    basis erases any initial state and stores every pair exactly; rewriting a key replaces its value."""
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(K, K, generator=gen, dtype=F64))[0].T     # rows: orthonormal keys
    order = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 2, 5])                          # keys 2 and 5 are rewritten
    T = len(order)
    k = basis[order].expand(B, H, T, K)
    v = torch.randn(B, H, T, V, generator=gen, dtype=F64)
    beta = torch.ones(B, H, T, dtype=F64)
    g = torch.zeros(B, H, T, dtype=F64) if gate == "zero" else None
    S0 = torch.randn(B, H, K, V, generator=gen, dtype=F64)
    q = basis[order[:3]].expand(B, H, 3, K)
    q = torch.cat([q, torch.zeros(B, H, T - 3, K, dtype=F64)], 2)                # read keys 0, 1, 2 as they come
    o, S = chunk_delta_rule(q, k, v, beta, g, initial_state=S0, output_final_state=True, chunk_size=4)
    torch.testing.assert_close(o[:, :, :3], v[:, :, :3], rtol=0, atol=1e-12)     # o_t reads S_t: just written
    last = {int(key): t for t, key in enumerate(order)}                          # the last write of each key
    for key, t in last.items():
        torch.testing.assert_close(basis[key] @ S, v[:, :, t], rtol=0, atol=1e-12)
    stored = sum(basis[key][:, None] * v[:, :, t, None, :] for key, t in last.items())
    torch.testing.assert_close(S, stored, rtol=0, atol=1e-12)                   # nothing of S_0 is left


def test_strong_gates_stay_finite_and_exact():
    """Log decays of -60 per step (a chunk's cumulative decay reaches -960): the chunked form never takes the
    exponential of a positive number, so it stays finite and equal to the recurrence, gradients included."""
    (q, k, v, beta, _), S0 = _inputs(40, gated=True, seed=2)
    g = torch.where(torch.rand(B, H, 40, generator=torch.Generator().manual_seed(0), dtype=F64) < 0.5, -60.0, -1e-3)
    inputs = [q, k, v, beta, g]
    for dtype in (F64, torch.float32):
        xs = [x.to(dtype) for x in inputs]
        (o, s), grads = _run(lambda *a, **kw: chunk_delta_rule(*a, chunk_size=16, **kw), xs, S0.to(dtype))
        (ro, rs), ref_grads = _run(recurrent_delta_rule, xs, S0.to(dtype))
        assert all(torch.isfinite(t).all() for t in (o, s, *grads))
        tol = 1e-12 if dtype == F64 else 5e-5
        assert _err(o, ro) <= tol and _err(s, rs) <= tol
        assert all(_err(a, b) <= 10 * tol for a, b in zip(grads, ref_grads))

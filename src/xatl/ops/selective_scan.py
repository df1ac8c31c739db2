"""Mamba's selective scan (S6, Gu & Dao, 2023): a diagonal linear recurrence per channel c and state index n.

    h_t[c, n] = exp(dt_t[c] A[c, n]) h_{t-1}[c, n] + dt_t[c] x_t[c] B_t[n]          y_t[c] = sum_n C_t[n] h_t[c, n]

In the fla convention q = C, k = B, v = x. Shapes: C, B (Bt, T, N); x, dt (Bt, T, D) with dt > 0; A (D, N) < 0;
state h (Bt, D, N). The skip term D * x and the gate live in the mixer.

The decay depends on both c and n, so there is no matmul form: every form does O(T D N) elementwise work. The
chunked form removes the per-token loop: inside a chunk of L steps, with Delta_t = sum_{r<=t} dt_r (chunk-local)
and E_t = exp(A Delta_t),

    h_t = E_t * (h_0 + cumsum_s(u_s / E_s))                    (u_s = dt_s x_s B_s)

which is exact while 1 / E stays finite: max_c |A_c| * Delta_L[c] <= SAFE_EXPONENT. A chunk that breaks the bound
(very large dt) is scanned step by step instead, so the result is exact for any input. A custom autograd function
recomputes the chunk states in the backward pass (the adjoint is the same recurrence run backwards), so training
memory is O(T D + T/L D N) instead of O(T D N).
"""

from __future__ import annotations

import torch

from .utils import acc_dtype, segsum, without_autocast

SAFE_EXPONENT = 60.0   # exp(60) ~ 1e26: room left below float32's 3e38 for the values it multiplies
LOG2E = 1.4426950408889634


def naive_selective_scan(C, B, x, dt, A, initial_state=None, output_final_state: bool = False):
    """Quadratic reference with the explicit decay tensor: h_t = sum_{s<=t} exp(segsum(dt A))[t, s] u_s + ..."""
    dtype, ct = x.dtype, acc_dtype(x)
    C, B, x, dt, A = (t.to(ct) for t in (C, B, x, dt, A))
    g = (dt[..., None] * A).permute(0, 2, 3, 1)                            # (Bt, D, N, T) log decay per step
    decay = torch.exp(segsum(g))                                            # (Bt, D, N, T, T)
    u = (dt * x)[..., None] * B[:, :, None, :]                              # (Bt, T, D, N)
    h = torch.einsum("bcnts,bscn->btcn", decay, u)                          # (Bt, T, D, N) all states
    if initial_state is not None:
        h = h + torch.exp(g.cumsum(-1)).permute(0, 3, 1, 2) * initial_state.to(ct)[:, None]
    y = torch.einsum("btcn,btn->btc", h, C)
    return y.to(dtype), (h[:, -1] if output_final_state else None)


def recurrent_selective_scan(C, B, x, dt, A, initial_state=None, output_final_state: bool = False):
    """Token-by-token recurrence (decoding)."""
    dtype, ct = x.dtype, acc_dtype(x)
    C, B, x, dt, A = (t.to(ct) for t in (C, B, x, dt, A))
    h = initial_state.to(ct) if initial_state is not None else x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    ys = []
    for Ct, Bt, xt, dtt in zip(C.unbind(1), B.unbind(1), x.unbind(1), dt.unbind(1)):   # (Bt, N) ... (Bt, D)
        h = torch.exp(dtt[..., None] * A) * h + (dtt * xt)[..., None] * Bt[:, None, :]
        ys.append((h @ Ct[..., None]).squeeze(-1))
    return torch.stack(ys, 1).to(dtype), (h if output_final_state else None)


def chunk_selective_scan(C, B, x, dt, A, initial_state=None, output_final_state: bool = False,
                         chunk_size: int = 64):
    """Chunked form (see the module docstring). Returns (y (Bt, T, D), final state (Bt, D, N) or None)."""
    dtype, ct = x.dtype, acc_dtype(x)
    C, B, x, dt, A = (t.to(ct) for t in (C, B, x, dt, A))
    h0 = initial_state.to(ct) if initial_state is not None else x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    with without_autocast(x):
        y, h = _ChunkScan.apply(C, B, x, dt, A, h0, chunk_size)
    return y.to(dtype), (h if output_final_state else None)


def _safe_chunks(dt: torch.Tensor, A: torch.Tensor, L: int) -> list[bool]:
    """Per chunk: does exp(|A| * Delta) stay below exp(SAFE_EXPONENT) in every channel and batch row?"""
    sums = torch.stack([c.sum(1) for c in dt.split(L, 1)], 1)             # (Bt, N_chunks, D)
    worst = (sums * A.abs().amax(-1)).amax(dim=(0, 2))                     # (N_chunks,)
    return (worst <= SAFE_EXPONENT).tolist()


def _cumsum(x: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Cumulative sum over dim 1 of x (Bt, L, D, N) as a matmul with a triangular matrix (L, L): on CPU several
    times faster than ``cumsum`` along a non-last dim. ``tri`` lower: inclusive prefix sums; upper: suffix sums."""
    return (tri @ x.flatten(2)).view_as(x)


def _chunk_states(dt, A, u, h0, safe: bool, tri):
    """States h_1..h_L of one chunk: dt (Bt, L, D), u (Bt, L, D, N), h0 (Bt, D, N) -> (h (Bt, L, D, N), E or a)."""
    if safe:
        E = torch.exp2(dt.cumsum(1)[..., None] * (A * LOG2E))              # (Bt, L, D, N), decay since chunk start
        return E * (_cumsum(u / E, tri) + h0[:, None]), E                 # (exp2: ~3x faster than exp on CPU)
    a = torch.exp(dt[..., None] * A)                                       # per-step decay
    h, out = h0, torch.empty_like(u)
    for t in range(u.shape[1]):
        h = a[:, t] * h + u[:, t]
        out[:, t] = h
    return out, a


def _chunk_adjoint(G, carry, E_or_a, safe: bool, tri):
    """Adjoint of one chunk: lam_t = G_t + a_{t+1} lam_{t+1} with a_{L+1} lam_{L+1} = carry.
    G (Bt, L, D, N) -> (lam (Bt, L, D, N), carry into the previous chunk a_1 lam_1 (Bt, D, N))."""
    if safe:
        E = E_or_a
        G[:, -1] += carry                                                  # G is a fresh tensor (no autograd here)
        acc = _cumsum(E * G, tri.T)                                        # sum_{s>=t} E_s G_s
        return acc / E, acc[:, 0]
    a, lam = E_or_a, torch.empty_like(G)
    for t in range(G.shape[1] - 1, -1, -1):
        lam[:, t] = G[:, t] + carry
        carry = a[:, t] * lam[:, t]
    return lam, carry


class _ChunkScan(torch.autograd.Function):
    """y, h_T = scan(C, B, x, dt, A, h0); saves only the inputs and the state at each chunk start."""

    @staticmethod
    def forward(ctx, C, B, x, dt, A, h0, L):
        safe = _safe_chunks(dt, A, L)
        tri = torch.ones(L, L, dtype=x.dtype, device=x.device).tril()
        ys, starts, h = [], [], h0
        for i, (Cc, Bc, xc, dtc) in enumerate(zip(C.split(L, 1), B.split(L, 1), x.split(L, 1), dt.split(L, 1))):
            starts.append(h)
            n = xc.shape[1]
            hs, _ = _chunk_states(dtc, A, (dtc * xc)[..., None] * Bc[:, :, None, :], h, safe[i], tri[:n, :n])
            ys.append(torch.einsum("blcn,bln->blc", hs, Cc))                # (Bt, L, D)
            h = hs[:, -1]
        ctx.save_for_backward(C, B, x, dt, A, torch.stack(starts, 0))
        ctx.L, ctx.safe = L, safe
        return torch.cat(ys, 1), h

    @staticmethod
    def backward(ctx, gy, gh):
        C, B, x, dt, A, starts = ctx.saved_tensors
        L = ctx.L
        tri = torch.ones(L, L, dtype=x.dtype, device=x.device).tril()
        carry = gh if gh is not None else torch.zeros_like(starts[0])
        gy = gy if gy is not None else torch.zeros_like(x)
        gA = torch.zeros_like(A)
        pieces = []
        chunks = list(zip(C.split(L, 1), B.split(L, 1), x.split(L, 1), dt.split(L, 1), gy.split(L, 1)))
        for i in range(len(chunks) - 1, -1, -1):
            Cc, Bc, xc, dtc, gyc = chunks[i]
            n = xc.shape[1]
            dtx = dtc * xc
            u = dtx[..., None] * Bc[:, :, None, :]                          # (Bt, L, D, N)
            hs, E_or_a = _chunk_states(dtc, A, u, starts[i], ctx.safe[i], tri[:n, :n])
            gC = (gyc[:, :, None, :] @ hs).squeeze(2)                       # (Bt, L, N)
            lam, carry = _chunk_adjoint(gyc[..., None] * Cc[:, :, None, :], carry, E_or_a, ctx.safe[i], tri[:n, :n])
            gdtx = torch.einsum("blcn,bln->blc", lam, Bc)                   # (Bt, L, D)
            gB = (dtx[:, :, None, :] @ lam).squeeze(2)                      # (Bt, L, N)
            Z = lam * (hs - u)                                              # d loss / d (dt_t A): lam_t a_t h_{t-1}
            gdt = (Z * A).sum(-1) + gdtx * xc
            gA += (Z * dtc[..., None]).sum((0, 1))
            pieces.append((gC, gB, gdtx * dtc, gdt))
        gC, gB, gx, gdt = (torch.cat(p[::-1], 1) for p in zip(*pieces))
        return gC, gB, gx, gdt, gA, carry, None


FORMS = {"naive": naive_selective_scan, "chunked": chunk_selective_scan, "recurrent": recurrent_selective_scan}

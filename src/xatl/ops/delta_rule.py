"""The delta rule (DeltaNet: Schlag et al., 2021; Yang et al., 2024) and its gated form (Gated DeltaNet, Yang et
al., 2024): linear attention whose state is corrected towards each new key-value pair instead of only summed.

    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T          o_t = q_t S_t
        = exp(g_t) S_{t-1} + k_t u_t^T,   u_t = beta_t (v_t - exp(g_t) S_{t-1}^T k_t)   (the "error" form)

Shapes: q, k (B, H, T, K); v (B, H, T, V); beta (B, H, T), the write strength in (0, 1) (up to 2 with negative
eigenvalues); g (B, H, T) the log decay (<= 0) per head and step, or None for the plain delta rule (g = 0);
state S (B, H, K, V).

Conventions are flash-linear-attention's (``fla/ops/delta_rule/naive.py``, ``fla/ops/gated_delta_rule/naive.py``):
the state is (K, V), fla's default layout (``state_v_first=False``); written (V, K) it is the textbook
S'_t = alpha_t S'_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T with o_t = S'_t q_t. The output reads S_t, the
state *after* step t's update, and the decay applies before the correction, as in fla. Unlike fla, queries come
already scaled (the mixers multiply by K^-0.5, fla's default ``scale``), as for every op here. Keys should be
L2-normalised: then every transition exp(g_t) (I - beta_t k_t k_t^T) is a contraction for beta_t in [0, 2].

Chunked form (the WY / UT transform, Yang et al., 2024). With b_i the log decay since the chunk start (through i)
and S_0 the state before the chunk, the errors u_i of a chunk satisfy the unit lower-triangular system

    (I + A) U = diag(beta) (V - diag(exp(b)) K S_0),   A[i, j] = beta_i (k_i . k_j) exp(b_i - b_j) for j < i

so U = U' - W S_0 with W = T diag(beta exp(b)) K, U' = T diag(beta) V, T = (I + A)^-1: one triangular solve per
chunk, in parallel. Then o_i = exp(b_i) q_i S_0 + sum_{j <= i} exp(b_i - b_j) (q_i . k_j) u_j and the state at
the chunk's end is exp(b_C) S_0 + sum_j exp(b_C - b_j) k_j u_j^T, by a short loop over chunks. Every exponential
is of a non-positive number (decays between ordered positions), so nothing overflows however strong the gate.
"""

from __future__ import annotations

import itertools

import torch

from .fla_backend import fla_chunk_delta_rule, fla_delta_usable
from .utils import acc_dtype, pad_to_chunks, segsum, unchunk


def _prepare(q, k, v, beta, g, initial_state):
    """Inputs in the accumulation dtype (g stays None for the plain rule), the state or zeros (B, H, K, V)."""
    ct = acc_dtype(v)
    q, k, v, beta = (t.to(ct) for t in (q, k, v, beta))
    g = g.to(ct) if g is not None else None
    B, H, _, K = k.shape
    S = initial_state.to(ct) if initial_state is not None else k.new_zeros(B, H, K, v.shape[-1])
    return q, k, v, beta, g, S


def _steps(g):
    """g's steps (B, H) along T, or endless Nones without a gate."""
    return g.unbind(2) if g is not None else itertools.repeat(None)


def naive_delta_rule(q, k, v, beta, g=None, initial_state=None, output_final_state: bool = False):
    """The defining recurrence, with each step's transition matrix exp(g_t) (I - beta_t k_t k_t^T) built
    explicitly (K x K): the reference. Returns (o (B, H, T, V) in v's dtype, final state (B, H, K, V) or None)."""
    dtype = v.dtype
    q, k, v, beta, g, S = _prepare(q, k, v, beta, g, initial_state)
    eye = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
    outs = []
    for qt, kt, vt, bt, gt in zip(q.unbind(2), k.unbind(2), v.unbind(2), beta.unbind(2), _steps(g)):
        bt, at = bt[..., None, None], (torch.exp(gt)[..., None, None] if gt is not None else 1.0)   # (B, H, 1, 1)
        outer = kt[..., :, None] * kt[..., None, :]                                 # (B, H, K, K)
        S = at * (eye - bt * outer) @ S + bt * kt[..., :, None] * vt[..., None, :]
        outs.append((qt[..., None, :] @ S).squeeze(-2))                             # o_t = q_t S_t
    return torch.stack(outs, 2).to(dtype), (S if output_final_state else None)


def recurrent_delta_rule(q, k, v, beta, g=None, initial_state=None, output_final_state: bool = False):
    """Token by token from a state (decoding), in the error form: a rank-one update per step, O(K V)."""
    dtype = v.dtype
    q, k, v, beta, g, S = _prepare(q, k, v, beta, g, initial_state)
    outs = []
    for qt, kt, vt, bt, gt in zip(q.unbind(2), k.unbind(2), v.unbind(2), beta.unbind(2), _steps(g)):
        if gt is not None:
            S = torch.exp(gt)[..., None, None] * S                                  # decay first (fla)
        u = bt[..., None] * (vt - (kt[..., None, :] @ S).squeeze(-2))               # (B, H, V)
        S = S + kt[..., :, None] * u[..., None, :]
        outs.append((qt[..., None, :] @ S).squeeze(-2))
    return torch.stack(outs, 2).to(dtype), (S if output_final_state else None)


def chunk_delta_rule(q, k, v, beta, g=None, initial_state=None, output_final_state: bool = False,
                     chunk_size: int = 64, use_fla: bool = False):
    """Chunked WY form (see the module docstring). ``use_fla`` runs fla's ``chunk_delta_rule`` /
    ``chunk_gated_delta_rule`` instead when the inputs are on CUDA and fla imports."""
    if use_fla and fla_delta_usable(q):
        return fla_chunk_delta_rule(q, k, v, beta, g, initial_state, output_final_state)
    dtype, T, gated = v.dtype, q.shape[2], g is not None
    q, k, v, beta, g, S = _prepare(q, k, v, beta, g, initial_state)
    qc, kc, vc = (pad_to_chunks(t, chunk_size) for t in (q, k, v))                  # (B, H, N, C, .)
    bc = pad_to_chunks(beta[..., None], chunk_size)[..., 0]                        # (B, H, N, C); pad: no write
    dec = _ChunkDecays(pad_to_chunks(g[..., None], chunk_size)[..., 0]) if gated else None
    W, U = _wy(kc, vc, bc, dec)
    k_end = kc * dec.to_end if gated else kc                                        # k_j decayed to the chunk end
    across = dec.across.unbind(2) if gated else [None] * kc.shape[2]
    states, errors = [], []
    for w, u, ke, a in zip(W.unbind(2), U.unbind(2), k_end.unbind(2), across):
        states.append(S)
        e = u - w @ S                                                               # (B, H, C, V): the errors u_i
        errors.append(e)
        S = (S if a is None else a * S) + ke.transpose(-1, -2) @ e
    states, errors = torch.stack(states, 2), torch.stack(errors, 2)                 # (B, H, N, K, V), (.., C, V)
    qk = qc @ kc.transpose(-1, -2)                                                  # (B, H, N, C, C)
    scores = qk * dec.decay if gated else qk.tril()                                 # causal, diagonal included
    o = (qc * dec.to_start if gated else qc) @ states + scores @ errors
    return unchunk(o, T).to(dtype), (S if output_final_state else None)


class _ChunkDecays:
    """The decays inside chunks of a log gate gc (B, H, N, C), every one exp of a non-positive number:
    ``decay`` (B, H, N, C, C) exp(b_i - b_j) for j <= i, else 0; ``to_start`` exp(b_i) and ``to_end``
    exp(b_C - b_i), (B, H, N, C, 1); ``across`` exp(b_C), (B, H, N, 1, 1); b the log decay since the chunk start."""

    def __init__(self, gc: torch.Tensor):
        b = gc.cumsum(-1)
        total = b[..., -1:]
        self.decay = torch.exp(segsum(gc))                                          # exact segment sums
        self.to_start = torch.exp(b)[..., None]
        self.to_end = torch.exp(total - b)[..., None]
        self.across = torch.exp(total)[..., None]


def _wy(kc, vc, bc, dec: _ChunkDecays | None):
    """The WY representation of each chunk, by one unit lower-triangular solve:
    (W (B, H, N, C, K), U' (B, H, N, C, V)), W = T diag(beta exp(b)) K, U' = T diag(beta) V."""
    kk = kc @ kc.transpose(-1, -2)                                                  # (B, H, N, C, C)
    A = (bc[..., None] * (kk * dec.decay if dec is not None else kk)).tril(-1)     # strictly lower
    eye = torch.eye(kc.shape[-2], dtype=kc.dtype, device=kc.device)
    k_start = kc * dec.to_start if dec is not None else kc
    rhs = bc[..., None] * torch.cat([k_start, vc], -1)                              # diag(beta) [exp(b) K, V]
    X = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
    return tuple(t.contiguous() for t in X.split([kc.shape[-1], vc.shape[-1]], -1))   # contiguous: cheap loop


FORMS = {"naive": naive_delta_rule, "chunked": chunk_delta_rule, "recurrent": recurrent_delta_rule}

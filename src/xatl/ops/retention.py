"""Multi-scale retention (RetNet, Sun et al., 2023), without the score/decay normalisations that the output
group-norm makes redundant (as in flash-linear-attention):

    S_t = gamma_h S_{t-1} + k_t^T v_t          o_t = q_t S_t

Shapes: q, k (B, H, T, D); v (B, H, T, Dv); log_decay (H,) = log(gamma_h) < 0; state S (B, H, D, Dv).

This is SSD (:mod:`xatl.ops.ssd`) with a constant gate g_t = log(gamma_h): the recurrent form is SSD's (GLA's)
recurrence; the naive and chunked forms use the fixed decay's closed form gamma^(t - s).
"""

from __future__ import annotations

import torch

from .fla_backend import fla_chunk_simple_gla, fla_usable
from .ssd import recurrent_ssd
from .utils import acc_dtype, pad_to_chunks, unchunk


def _decay_matrix(log_decay: torch.Tensor, T: int, device) -> torch.Tensor:
    """D[h, t, s] = gamma_h^(t - s) for s <= t else 0.  (H, T, T)"""
    pos = torch.arange(T, device=device, dtype=log_decay.dtype)
    diff = pos[:, None] - pos[None, :]
    expo = torch.where(diff >= 0, diff, torch.zeros_like(diff))
    return torch.exp(log_decay[:, None, None] * expo) * (diff >= 0)


def naive_retention(q, k, v, log_decay, initial_state=None, output_final_state: bool = False):
    """Quadratic reference: o = ((q k^T) * D) v + gamma^(t+1) q S_0."""
    dtype = v.dtype
    ct = acc_dtype(v)
    q, k, v = q.to(ct), k.to(ct), v.to(ct)
    g = log_decay.to(acc_dtype(v))
    T = q.shape[2]
    o = ((q @ k.transpose(-1, -2)) * _decay_matrix(g, T, q.device)) @ v
    pos = torch.arange(T, device=q.device, dtype=acc_dtype(v))
    if initial_state is not None:
        o = o + (q * torch.exp(g[:, None] * (pos + 1))[None, :, :, None]) @ initial_state
    final = None
    if output_final_state:
        w = torch.exp(g[:, None] * (T - 1 - pos))[None, :, :, None]       # (1, H, T, 1)
        final = (k * w).transpose(-1, -2) @ v
        if initial_state is not None:
            final = final + torch.exp(g * T)[None, :, None, None] * initial_state
    return o.to(dtype), final


def chunk_retention(q, k, v, log_decay, initial_state=None, output_final_state: bool = False,
                    chunk_size: int = 64, use_fla: bool = False):
    """Chunked form: decayed attention inside chunks; chunk states combined with one (N x N) decay matmul.

    ``use_fla`` runs it as fla's ``chunk_simple_gla`` with the constant gate, when the inputs are on CUDA and
    fla imports."""
    if use_fla and fla_usable(q):
        return fla_chunk_simple_gla(q, k, v, _constant_gate(log_decay, q), initial_state, output_final_state)
    dtype, T = v.dtype, q.shape[2]
    g = log_decay.to(acc_dtype(v))
    C = chunk_size
    qc, kc, vc = (pad_to_chunks(t.to(acc_dtype(v)), C) for t in (q, k, v))        # (B, H, N, C, .)
    N = qc.shape[2]
    i = torch.arange(C, device=q.device, dtype=acc_dtype(v))
    intra = ((qc @ kc.transpose(-1, -2)) * _decay_matrix(g, C, q.device)[:, None]) @ vc
    # contribution of chunk m to the state at its end: U_m = sum_j gamma^(C-1-j) k_j^T v_j
    U = (kc * torch.exp(g[:, None] * (C - 1 - i))[None, :, None, :, None]).transpose(-1, -2) @ vc
    n = torch.arange(N, device=q.device, dtype=acc_dtype(v))
    gap = n[:, None] - 1 - n[None, :]                                      # (N, N): chunks between m and n
    M = torch.exp(g[:, None, None] * C * gap.clamp(min=0)) * (gap >= 0)    # (H, N, N)
    S = torch.einsum("hnm,bhmde->bhnde", M, U)                             # state at each chunk start
    if initial_state is not None:
        S = S + torch.exp(g[:, None] * C * n)[None, :, :, None, None] * initial_state.unsqueeze(2)
    inter = (qc * torch.exp(g[:, None] * (i + 1))[None, :, None, :, None]) @ S
    o = unchunk(intra + inter, T)
    final = None
    if output_final_state:
        L = T - (N - 1) * C                                                 # real length of the last chunk
        w = torch.where(i < L, torch.exp(g[:, None] * (L - 1 - i).clamp(min=0)), torch.zeros((), device=q.device))
        last = (kc[:, :, -1] * w[None, :, :, None]).transpose(-1, -2) @ vc[:, :, -1]
        final = torch.exp(g * L)[None, :, None, None] * S[:, :, -1] + last
    return o.to(dtype), final


def recurrent_retention(q, k, v, log_decay, initial_state=None, output_final_state: bool = False):
    """Token-by-token recurrence (decoding): SSD's, with the constant gate log(gamma_h) at every step."""
    return recurrent_ssd(q, k, v, _constant_gate(log_decay, q), initial_state, output_final_state)


def _constant_gate(log_decay: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(H,) -> SSD's gate (B, H, T): log(gamma_h) at every step."""
    return log_decay[:, None].expand(*q.shape[:3])


FORMS = {"naive": naive_retention, "chunked": chunk_retention, "recurrent": recurrent_retention}

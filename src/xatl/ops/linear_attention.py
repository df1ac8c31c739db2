"""Linear attention (Katharopoulos et al., 2020) with a normalising denominator.

With feature-mapped queries/keys phi(q), phi(k) >= 0:

    S_t = S_0 + sum_{s<=t} phi(k_s)^T v_s          (F x Dv)
    z_t = z_0 + sum_{s<=t} phi(k_s)                 (F)
    o_t = phi(q_t) S_t / (phi(q_t) . z_t + eps)      (normalize=True; else the numerator alone)

Shapes: q, k (B, H, T, F) already feature-mapped; v (B, H, T, Dv); state = (S (B, H, F, Dv), z (B, H, F)).
"""

from __future__ import annotations

import torch

from .fla_backend import fla_chunk_simple_gla, fla_usable
from .utils import acc_dtype, exclusive_cumsum, pad_to_chunks, unchunk

State = tuple[torch.Tensor, torch.Tensor]


def _zero_state(q: torch.Tensor, v: torch.Tensor) -> State:
    B, H, _, F = q.shape
    return (q.new_zeros(B, H, F, v.shape[-1], dtype=acc_dtype(v)), q.new_zeros(B, H, F, dtype=acc_dtype(v)))


def naive_linear_attn(q, k, v, initial_state: State | None = None, output_final_state: bool = False,
                      normalize: bool = True, eps: float = 1e-6):
    """Quadratic reference: o = (tril(q k^T) v + q S_0) / (rowsum(tril(q k^T)) + q z_0 + eps)."""
    dtype = v.dtype
    ct = acc_dtype(v)
    q, k, v = q.to(ct), k.to(ct), v.to(ct)
    S0, z0 = initial_state if initial_state is not None else _zero_state(q, v)
    A = (q @ k.transpose(-1, -2)).tril()                                  # (B, H, T, T)
    num = A @ v + q @ S0                                                  # (B, H, T, Dv)
    o = num / (A.sum(-1, keepdim=True) + (q @ z0.unsqueeze(-1)) + eps) if normalize else num
    final = None
    if output_final_state:
        final = (S0 + k.transpose(-1, -2) @ v, z0 + k.sum(2))
    return o.to(dtype), final


def chunk_linear_attn(q, k, v, initial_state: State | None = None, output_final_state: bool = False,
                      normalize: bool = True, eps: float = 1e-6, chunk_size: int = 64, use_fla: bool = False):
    """Chunked form: exact attention inside chunks of ``chunk_size``, running state across chunks (vectorised).
    ``use_fla`` runs it as fla's ``chunk_simple_gla`` with no decay when the inputs are on CUDA and fla imports."""
    if use_fla and fla_usable(q):
        return _fla_linear_attn(q, k, v, initial_state, output_final_state, normalize, eps)
    dtype, T = v.dtype, q.shape[2]
    S0, z0 = initial_state if initial_state is not None else _zero_state(q, v)
    qc, kc, vc = (pad_to_chunks(t.to(acc_dtype(v)), chunk_size) for t in (q, k, v))  # (B, H, N, C, .)
    kv = kc.transpose(-1, -2) @ vc                                        # (B, H, N, F, Dv)
    S = exclusive_cumsum(kv, 2) + S0.unsqueeze(2)                         # state before each chunk
    A = (qc @ kc.transpose(-1, -2)).tril()                                # (B, H, N, C, C)
    num = A @ vc + qc @ S                                                 # (B, H, N, C, Dv)
    ksum = kc.sum(3)                                                      # (B, H, N, F)
    z = exclusive_cumsum(ksum, 2) + z0.unsqueeze(2)                       # (B, H, N, F)
    if normalize:
        den = A.sum(-1, keepdim=True) + qc @ z.unsqueeze(-1)             # (B, H, N, C, 1)
        num = num / (den + eps)
    o = unchunk(num, T)
    final = None
    if output_final_state:
        final = (S[:, :, -1] + kv[:, :, -1], z[:, :, -1] + ksum[:, :, -1])
    return o.to(dtype), final


def _fla_linear_attn(q, k, v, initial_state, output_final_state, normalize, eps):
    """Linear attention as simple GLA with a zero log-decay. The normaliser rides along as one more value
    channel of ones, so one kernel call gives the numerator phi(q) S and the denominator phi(q) . z, and its
    state column is z (plus a channel of zeros where the value width would be odd: fla's 16-bit backward wants
    it even)."""
    B, H, T, _ = q.shape
    Dv = v.shape[-1]
    pad = (Dv + 1) % 2                                    # zero channels after the ones: keep the width even
    if normalize:
        v = torch.cat([v, v.new_ones(B, H, T, 1), v.new_zeros(B, H, T, pad)], -1)
    S0 = None
    if initial_state is not None:
        S0 = initial_state[0]
        if normalize:
            S, z = initial_state
            S0 = torch.cat([S, z[..., None], S.new_zeros(*S.shape[:-1], pad)], -1)
    g = q.new_zeros(B, H, T, dtype=torch.float32)
    o, S = fla_chunk_simple_gla(q, k, v, g, S0, output_final_state)
    if normalize:
        o = (o[..., :Dv].float() / (o[..., Dv:Dv + 1].float() + eps)).to(o.dtype)
    final = None
    if output_final_state:
        z = S[..., Dv] if normalize else (initial_state[1] if initial_state is not None else 0) + k.float().sum(2)
        final = (S[..., :Dv], z)
    return o, final


def recurrent_linear_attn(q, k, v, initial_state: State | None = None, output_final_state: bool = False,
                          normalize: bool = True, eps: float = 1e-6):
    """Token-by-token recurrence (decoding). Memory O(F * Dv) per head whatever T is."""
    dtype = v.dtype
    S, z = initial_state if initial_state is not None else _zero_state(q, v)
    ct = acc_dtype(v)
    q, k, v = q.to(ct), k.to(ct), v.to(ct)
    outs = []
    for qt, kt, vt in zip(q.unbind(2), k.unbind(2), v.unbind(2)):        # (B, H, F), (B, H, F), (B, H, Dv)
        S = S + kt.unsqueeze(-1) * vt.unsqueeze(-2)
        z = z + kt
        num = (qt.unsqueeze(-2) @ S).squeeze(-2)                          # (B, H, Dv)
        if normalize:
            num = num / ((qt * z).sum(-1, keepdim=True) + eps)
        outs.append(num)
    o = torch.stack(outs, dim=2)
    return o.to(dtype), ((S, z) if output_final_state else None)


FORMS = {"naive": naive_linear_attn, "chunked": chunk_linear_attn, "recurrent": recurrent_linear_attn}

"""Linear attention (Katharopoulos et al., 2020) with a normalising denominator.

With feature-mapped queries/keys phi(q), phi(k) >= 0:

    S_t = S_0 + sum_{s<=t} phi(k_s)^T v_s          (F x Dv)
    z_t = z_0 + sum_{s<=t} phi(k_s)                 (F)
    o_t = phi(q_t) S_t / (phi(q_t) . z_t + eps)      (normalize=True; else the numerator alone)

Shapes: q, k (B, H, T, F) already feature-mapped; v (B, H, T, Dv); state = (S (B, H, F, Dv), z (B, H, F)).
"""

from __future__ import annotations

import torch

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
                      normalize: bool = True, eps: float = 1e-6, chunk_size: int = 64):
    """Chunked form: exact attention inside chunks of ``chunk_size``, running state across chunks (vectorised)."""
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

"""Gated linear attention (GLA, Yang et al., 2023): linear attention with a data-dependent decay per key channel.

    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t          o_t = q_t S_t

Shapes: q, k, g (B, H, T, K) with g the log decay (<= 0); v (B, H, T, V); state S (B, H, K, V).

Chunked form. Inside a chunk the scores are A[t, s] = sum_k q_tk k_sk exp(b_tk - b_sk) (b = cumulative g), which
is not a plain matmul because the decay differs per channel. Factorising exp(b_t - b_s) = exp(b_t - r) exp(r - b_s)
makes it one, and is exact and overflow-free when the reference r lies between s and t: for a query block i and an
earlier key block j, r = b at the last position of block j makes both factors exponentials of non-positive numbers.
The diagonal blocks are split the same way, recursively, down to blocks of 4 computed explicitly. So the chunked
form stays exact for any gate values (no clamping), with matmuls doing the work. When a chunk's total decay is
moderate (the usual case) a single reference, the chunk start, is already safe and one matmul gives the scores.
"""

from __future__ import annotations

import torch

from .fla_backend import fla_chunk_gla, fla_usable
from .utils import acc_dtype, finish_chunked, pad_to_chunks, segsum

SPLIT = 4   # blocks per level of the recursive intra-chunk scores; blocks of <= SPLIT are computed explicitly
SAFE_EXPONENT = 60.0   # exp(60) ~ 1e26: the single-reference fast path keeps exp(-b) below it


def naive_gla(q, k, v, g, initial_state=None, output_final_state: bool = False):
    """Quadratic reference with the explicit (T, T, K) decay tensor exp(segsum(g)) per channel."""
    dtype, ct = v.dtype, acc_dtype(v)
    q, k, v, g = (t.to(ct) for t in (q, k, v, g))
    decay = torch.exp(segsum(g.transpose(-1, -2)))                          # (B, H, K, T, T)
    A = torch.einsum("bhtk,bhsk,bhkts->bhts", q, k, decay)
    o = A @ v
    b = g.cumsum(2)                                                         # (B, H, T, K) decay since the start
    if initial_state is not None:
        o = o + (q * torch.exp(b)) @ initial_state
    final = None
    if output_final_state:
        w = decay[..., -1, :].transpose(-1, -2)                             # (B, H, T, K): decay from s to the end
        final = (k * w).transpose(-1, -2) @ v
        if initial_state is not None:
            final = final + torch.exp(b[:, :, -1])[..., None] * initial_state
    return o.to(dtype), final


def decay_scores(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Causal per-channel decayed scores inside blocks.

    q, k, b (..., C, K), b the cumulative log decay (non-increasing along C) ->
    A (..., C, C) with A[t, s] = sum_k q_tk k_sk exp(b_tk - b_sk) for s <= t, else 0.
    """
    C = q.shape[-2]
    if C <= SPLIT or C % SPLIT:
        decay = torch.exp(segsum_from_cumsum(b))                            # (..., K, C, C)
        return torch.einsum("...tk,...sk,...kts->...ts", q, k, decay)
    n, c = SPLIT, C // SPLIT
    bs, ks = b.unflatten(-2, (n, c)), k.unflatten(-2, (n, c))               # (..., n, c, K)
    ref = bs[..., -1, :]                                                    # (..., n, K): b at the end of block j
    q_j = q.unsqueeze(-3) * torch.exp((b.unsqueeze(-3) - ref.unsqueeze(-2)).clamp(max=0))   # (..., n_j, C, K)
    k_j = ks * torch.exp(ref.unsqueeze(-2) - bs)                            # (..., n_j, c, K)
    off = (q_j @ k_j.transpose(-1, -2)).movedim(-3, -2).reshape(*q.shape[:-2], C, C)   # columns j * c + s
    blk = torch.arange(C, device=q.device) // c
    off = off * (blk[:, None] > blk[None, :])                               # strictly earlier key blocks only
    diag = decay_scores(q.unflatten(-2, (n, c)), ks, bs)                    # (..., n, c, c)
    eye = torch.eye(n, device=q.device, dtype=q.dtype)
    diag = (diag.unsqueeze(-2) * eye[:, None, :, None]).reshape(*q.shape[:-2], C, C)   # block-diagonal
    return off + diag


def segsum_from_cumsum(b: torch.Tensor) -> torch.Tensor:
    """(..., C, K) cumulative log decay -> (..., K, C, C): b_t - b_s for s <= t, -inf above the diagonal."""
    bt = b.transpose(-1, -2)
    C = bt.shape[-1]
    causal = torch.ones(C, C, dtype=torch.bool, device=b.device).tril()
    return (bt[..., :, None] - bt[..., None, :]).masked_fill(~causal, float("-inf"))


def chunk_gla(q, k, v, g, initial_state=None, output_final_state: bool = False, chunk_size: int = 64,
              use_fla: bool = False, fast: bool = True):
    """Chunked form (see the module docstring); ``use_fla`` runs fla's ``chunk_gla`` on CUDA when available.

    ``fast``: when every chunk's total log decay stays above -SAFE_EXPONENT (the usual case), the scores take a
    single reference per chunk, A = tril((q exp(b)) (k exp(-b))^T), one matmul; otherwise (or with fast=False)
    the recursive factorisation below, exact for any gates."""
    if use_fla and fla_usable(q):
        return fla_chunk_gla(q, k, v, g, initial_state, output_final_state)
    dtype, ct, T = v.dtype, acc_dtype(v), q.shape[2]
    qc, kc, vc, gc = (pad_to_chunks(t.to(ct), chunk_size) for t in (q, k, v, g))   # (B, H, N, C, .)
    b = gc.cumsum(3)                                                        # decay since the chunk start
    total = b[..., -1, :]                                                   # (B, H, N, K)
    q_dec = qc * torch.exp(b)                                               # q_t decayed back to the chunk start
    if fast and bool(total.amin() >= -SAFE_EXPONENT):                       # one reference per chunk is exact
        scores = (q_dec @ (kc * torch.exp(-b)).transpose(-1, -2)).tril()
    else:
        scores = decay_scores(qc, kc, b)
    intra = scores @ vc                                                     # (B, H, N, C, V)
    return finish_chunked(intra, q_dec, kc, vc, b, total, initial_state, output_final_state, T, dtype)


def recurrent_gla(q, k, v, g, initial_state=None, output_final_state: bool = False):
    """Token-by-token recurrence (decoding). The one recurrence of the decayed linear attentions: g may also be
    (B, H, T, 1), one decay per head and step (SSD, and retention's constant one), broadcast over the key channels."""
    dtype, ct, (B, H, _, K) = v.dtype, acc_dtype(v), q.shape
    q, k, v, g = (t.to(ct) for t in (q, k, v, g))
    S = initial_state.to(ct) if initial_state is not None else q.new_zeros(B, H, K, v.shape[-1])
    outs = []
    for qt, kt, vt, gt in zip(q.unbind(2), k.unbind(2), v.unbind(2), g.unbind(2)):   # (B, H, K) ... (B, H, K | 1)
        S = torch.exp(gt)[..., None] * S + kt[..., :, None] * vt[..., None, :]
        outs.append((qt[..., None, :] @ S).squeeze(-2))
    return torch.stack(outs, 2).to(dtype), (S if output_final_state else None)


FORMS = {"naive": naive_gla, "chunked": chunk_gla, "recurrent": recurrent_gla}

"""Linear attention with a data-dependent *scalar* decay per head and step: Mamba-2's SSD (Dao & Gu, 2024), also
known as "simple GLA". In attention notation (q = C, k = B, v = dt * x, g = dt * A):

    S_t = exp(g_t) S_{t-1} + k_t^T v_t          o_t = q_t S_t

Shapes: q, k (B, H, T, K); v (B, H, T, V); g (B, H, T) log decay <= 0; state S (B, H, K, V).

The chunked form is SSD's block decomposition: inside a chunk the decay matrix exp(segsum(g)) (every entry an
exponential of a non-positive number, so it never overflows) masks q k^T like a causal mask; across chunks a
state is carried by a short loop over chunks.
"""

from __future__ import annotations

import torch

from .fla_backend import fla_chunk_simple_gla, fla_usable
from .gla import recurrent_gla
from .utils import acc_dtype, finish_chunked, pad_to_chunks, segsum


def naive_ssd(q, k, v, g, initial_state=None, output_final_state: bool = False):
    """Quadratic reference: o = ((q k^T) * exp(segsum(g))) v + exp(cumsum(g)) q S_0."""
    dtype, ct = v.dtype, acc_dtype(v)
    q, k, v, g = (t.to(ct) for t in (q, k, v, g))
    o = ((q @ k.transpose(-1, -2)) * torch.exp(segsum(g))) @ v
    b = g.cumsum(-1)                                                       # (B, H, T) decay since the start
    if initial_state is not None:
        o = o + (q * torch.exp(b)[..., None]) @ initial_state
    final = None
    if output_final_state:
        w = torch.exp(segsum(g)[..., -1, :])                               # (B, H, T): decay from s to the end
        final = (k * w[..., None]).transpose(-1, -2) @ v
        if initial_state is not None:
            final = final + torch.exp(b[..., -1])[..., None, None] * initial_state
    return o.to(dtype), final


def chunk_ssd(q, k, v, g, initial_state=None, output_final_state: bool = False, chunk_size: int = 64,
              use_fla: bool = False):
    """Chunked (SSD) form; ``use_fla`` runs fla's ``chunk_simple_gla`` instead when CUDA and fla are available."""
    if use_fla and fla_usable(q):
        return fla_chunk_simple_gla(q, k, v, g, initial_state, output_final_state)
    dtype, ct, T = v.dtype, acc_dtype(v), q.shape[2]
    qc, kc, vc = (pad_to_chunks(t.to(ct), chunk_size) for t in (q, k, v))      # (B, H, N, C, .)
    gc = pad_to_chunks(g.to(ct)[..., None], chunk_size)[..., 0]                # (B, H, N, C), padding: no decay
    b = gc.cumsum(-1)                                                          # decay since the chunk start
    intra = ((qc @ kc.transpose(-1, -2)) * torch.exp(segsum(gc))) @ vc
    total = b[..., -1:]                                                        # (B, H, N, 1)
    b = b[..., None]                                                           # (B, H, N, C, 1): one per head
    return finish_chunked(intra, qc * torch.exp(b), kc, vc, b, total, initial_state, output_final_state, T, dtype)


def recurrent_ssd(q, k, v, g, initial_state=None, output_final_state: bool = False):
    """Token-by-token recurrence (decoding): GLA's, with the head's decay for every key channel."""
    return recurrent_gla(q, k, v, g[..., None], initial_state, output_final_state)


FORMS = {"naive": naive_ssd, "chunked": chunk_ssd, "recurrent": recurrent_ssd}

"""Small helpers shared by the ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, N, C, D), zero-padding T up to N * C."""
    B, H, T, D = x.shape
    n = -(-T // chunk_size)
    pad = n * chunk_size - T
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.view(B, H, n, chunk_size, D)


def unchunk(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, N, C, D) -> (B, H, length, D)."""
    B, H, N, C, D = x.shape
    return x.reshape(B, H, N * C, D)[:, :, :length]


def exclusive_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum of all elements strictly before each index along ``dim`` (no subtraction, so no cancellation)."""
    shifted = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)
    return shifted.cumsum(dim)


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    """Accumulation dtype: float32, or float64 when the inputs already are (tests use float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def segsum(g: torch.Tensor) -> torch.Tensor:
    """Segment sums of a log decay along the last dim, exactly (no cumsum differences, so no cancellation).

    g (..., T) -> (..., T, T) with out[..., t, s] = sum_{s < r <= t} g[..., r] for s <= t and -inf above the
    diagonal, so that ``exp(segsum(g))`` is the causal decay matrix (1 on the diagonal, 0 above it).
    """
    T = g.shape[-1]
    x = g[..., :, None].expand(*g.shape, T)                              # x[..., t, s] = g[..., t]
    strict = torch.ones(T, T, dtype=torch.bool, device=g.device).tril(-1)
    x = x.masked_fill(~strict, 0).cumsum(-2)                             # sum over s < r <= t
    causal = torch.ones(T, T, dtype=torch.bool, device=g.device).tril()
    return x.masked_fill(~causal, float("-inf"))


def scan_chunk_states(U: torch.Tensor, log_decay: torch.Tensor, S0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The state before each chunk, from per-chunk contributions, by a short loop over chunks (O(N) work).

    U: (B, H, N, K, V) contribution of chunk n to the state at its end; log_decay: (B, H, N, K) or (B, H, N, 1), the
    total log decay across chunk n (per key channel or per head); S0: (B, H, K, V).
    Returns (states (B, H, N, K, V): S_n before chunk n, final state after the last chunk (B, H, K, V)).
    """
    states, S = [], S0
    for u, g in zip(U.unbind(2), log_decay.unbind(2)):                    # unbind: cheap backward (a stack)
        states.append(S)
        S = torch.exp(g)[..., None] * S + u
    return torch.stack(states, 2), S

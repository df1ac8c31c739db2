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

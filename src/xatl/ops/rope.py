"""Rotary position embeddings (RoPE), with the same operations as Hugging Face's so that a student's softmax
mixer reproduces its donor bit for bit. ``cos``/``sin`` are (B, T, R) with R the rotated dims; ``x`` is (B, H, T, D).
"""

from __future__ import annotations

import torch


def default_inv_freq(dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Plain RoPE inverse frequencies for mixers that rotate on their own (donors without RoPE). (dim/2,)"""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))


def rope_cos_sin(inv_freq: torch.Tensor, position_ids: torch.Tensor, dtype: torch.dtype, scaling: float = 1.0):
    """cos, sin of shape (B, T, R) for position_ids (B, T); R = 2 * len(inv_freq). Same ops as HF."""
    freqs = position_ids[..., None].float() * inv_freq.to(device=position_ids.device, dtype=torch.float)
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first R dims of x (B, H, T, D) by cos/sin (B, T, R); the other D - R dims pass (NeoX partial)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    R = cos.shape[-1]
    if R == x.shape[-1]:
        return (x * cos) + (rotate_half(x) * sin)
    x_rot, x_pass = x[..., :R], x[..., R:]
    return torch.cat([(x_rot * cos) + (rotate_half(x_rot) * sin), x_pass], dim=-1)

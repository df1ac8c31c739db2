"""The donor skeleton's building blocks: norms, MLPs and rotary position embeddings.

Each mirrors the Hugging Face implementation it replaces operation for operation (same dtype casts, same order
of floating-point operations) so that a student with softmax mixers reproduces its donor's logits.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from ..ops.rope import apply_rope, default_inv_freq, rope_cos_sin, rotate_half  # noqa: F401  (re-exported)
from .configuration_xatl import XATLConfig


class RMSNorm(nn.Module):
    """Llama/Qwen2 RMSNorm: ``weight * (x / sqrt(mean(x^2) + eps))`` computed in float32. (..., C) -> (..., C)"""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def make_norm(config: XATLConfig) -> nn.Module:
    """The donor's norm: RMSNorm, or LayerNorm (with or without bias)."""
    if config.norm_type == "rmsnorm":
        return RMSNorm(config.hidden_size, eps=config.norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)


class MLP(nn.Module):
    """Gated (Llama: ``down(act(gate(x)) * up(x))``) or plain (GPT-2/NeoX: ``down(act(up(x)))``). (B, T, C) -> (B, T, C)"""

    def __init__(self, config: XATLConfig):
        super().__init__()
        hidden, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gated = config.mlp_type == "gated"
        if self.gated:
            self.gate_proj = nn.Linear(hidden, inner, bias=bias)
        self.up_proj = nn.Linear(hidden, inner, bias=bias)
        self.down_proj = nn.Linear(inner, hidden, bias=bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(self.act_fn(self.up_proj(x)))


def rope_inv_freq(config: XATLConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (R/2,) and the cos/sin scaling of the donor's RoPE variant (via transformers)."""
    params = config.rope_parameters
    rope_type = params.get("rope_type", "default")
    if rope_type != "default":
        return ROPE_INIT_FUNCTIONS[rope_type](config)
    dim = int(config.head_dim * params.get("partial_rotary_factor", 1.0))
    inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    return inv_freq, 1.0


class RotaryEmbedding(nn.Module):
    """The donor's rotary embedding. forward(x, position_ids (B, T)) -> (cos, sin), each (B, T, R)."""

    def __init__(self, config: XATLConfig):
        super().__init__()
        self.config = config
        inv_freq, self.attention_scaling = rope_inv_freq(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def _xatl_init(self, std: float) -> None:
        inv_freq, self.attention_scaling = rope_inv_freq(self.config)
        with torch.no_grad():
            self.inv_freq.copy_(inv_freq)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        return rope_cos_sin(self.inv_freq, position_ids, x.dtype, self.attention_scaling)

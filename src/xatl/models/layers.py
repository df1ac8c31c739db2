"""The donor skeleton's building blocks: norms, MLPs and rotary position embeddings.

Each mirrors the Hugging Face implementation it replaces operation for operation (same dtype casts, same order
of floating-point operations) so that a student with softmax mixers reproduces its donor's logits.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from ..ops.rope import apply_rope, default_inv_freq, rope_cos_sin, rotate_half  # noqa: F401  (re-exported)
from .configuration_xatl import XATLConfig


class RMSNorm(nn.Module):
    """RMSNorm ``(offset + weight) * (x / sqrt(mean(x^2) + eps))``, normalised in float32. (..., C) -> (..., C)

    Llama/Qwen: offset 0, cast to x's dtype, then times the weight. ``weight_fp32`` (OLMo 2, Gemma): times the
    weight in float32, then cast. ``offset`` 1 is Gemma's ``1 + w`` (its weights start at zero)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, offset: float = 0.0, weight_fp32: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size) if not offset else torch.zeros(hidden_size))
        self.eps, self.offset, self.weight_fp32 = eps, offset, weight_fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight_fp32:
            w = self.weight.float()
            return (h * (self.offset + w if self.offset else w)).to(dtype)
        return (self.offset + self.weight if self.offset else self.weight) * h.to(dtype)


def make_norm(config: XATLConfig, size: int | None = None) -> nn.Module:
    """The donor's norm over ``size`` features (default hidden_size): RMSNorm, or LayerNorm (with or without bias)."""
    size = config.hidden_size if size is None else size
    if config.norm_type == "rmsnorm":
        return RMSNorm(size, eps=config.norm_eps, offset=config.norm_offset, weight_fp32=config.norm_weight_fp32)
    return nn.LayerNorm(size, eps=config.norm_eps, bias=config.norm_bias)


class ScaledEmbedding(nn.Embedding):
    """Token embeddings times a constant in the embedding dtype (Gemma's sqrt(hidden)). (B, T) -> (B, T, C)"""

    def __init__(self, num_embeddings: int, embedding_dim: int, scale: float):
        super().__init__(num_embeddings, embedding_dim)
        self.scale = scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        scale = torch.tensor(self.scale, device=self.weight.device).to(self.weight.dtype)   # fp32, then cast (HF)
        return super().forward(input_ids) * scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}"


def make_embedding(config: XATLConfig) -> nn.Embedding:
    """The donor's token embedding: plain, or scaled by ``config.embed_scale``."""
    if config.embed_scale is None:
        return nn.Embedding(config.vocab_size, config.hidden_size)
    return ScaledEmbedding(config.vocab_size, config.hidden_size, config.embed_scale)


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


def rope_inv_freq(config: XATLConfig, params: dict | None = None) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (R/2,) and the cos/sin scaling of the donor's RoPE variant (via transformers).
    params: the RoPE dict (default ``config.rope_parameters``; ``sliding_rope_parameters`` for windowed layers)."""
    params = config.rope_parameters if params is None else params
    rope_type = params.get("rope_type", "default")
    if rope_type != "default":
        if params is not config.rope_parameters:            # transformers reads config.rope_parameters
            config = copy.deepcopy(config)
            config.rope_parameters = dict(params)
        return ROPE_INIT_FUNCTIONS[rope_type](config)
    dim = int(config.head_dim * params.get("partial_rotary_factor", 1.0))
    inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    return inv_freq, 1.0


class RotaryEmbedding(nn.Module):
    """The donor's rotary embedding. forward(x, position_ids (B, T)) -> (cos, sin), each (B, T, R).
    params: its RoPE dict (default ``config.rope_parameters``)."""

    def __init__(self, config: XATLConfig, params: dict | None = None):
        super().__init__()
        self.config, self.params = config, params
        inv_freq, self.attention_scaling = rope_inv_freq(config, params)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def _xatl_init(self, std: float) -> None:
        inv_freq, self.attention_scaling = rope_inv_freq(self.config, self.params)
        with torch.no_grad():
            self.inv_freq.copy_(inv_freq)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        return rope_cos_sin(self.inv_freq, position_ids, x.dtype, self.attention_scaling)

"""``retention``: RetNet multi-scale retention (Sun et al., 2023).

Per head h a fixed decay gamma_h = 1 - 2^(-5 - h); positions enter through the donor's RoPE (xPos-style
rotation) when it has one, else a plain RoPE of the mixer's own; then a per-head RMS group norm and a swish
output gate:  y = o_proj(groupnorm(retention(q, k, v)) * silu(g_proj(x))).

State: {"kv": (B, H, D, Dv)}, independent of the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..models.layers import apply_rope, default_inv_freq, rope_cos_sin
from ..ops.retention import chunk_retention, naive_retention, recurrent_retention
from .base import LCIOptions, Mixer, MixerContext, State, merge_heads, split_heads


@dataclass
class RetentionOptions(LCIOptions):
    use_rope: bool = True
    """Rotate q/k (the donor's RoPE if it has one, else RoPE with theta 10000 over the full head)."""
    gate: bool = True
    """Swish output gate g = silu(g_proj(x)) (RetNet); False drops g_proj."""
    expand_v: int = 1
    """Value head dim = expand_v * head_dim (RetNet uses 2; 1 keeps the donor's o_proj shape for transfer)."""
    norm_eps: float = 1e-6
    """Epsilon of the per-head group norm."""

    def validate(self) -> None:
        super().validate()
        if self.expand_v < 1:
            raise ValueError(f"expand_v must be >= 1, got {self.expand_v}")


def retnet_log_decay(num_heads: int) -> torch.Tensor:
    """log(gamma_h) = log(1 - 2^(-5 - h)), h = 0..H-1.  (H,)"""
    return torch.log(1 - 2.0 ** (-5.0 - torch.arange(num_heads, dtype=torch.float32)))


class Retention(Mixer):
    name = "retention"
    Options = RetentionOptions

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        H, D, C = config.num_attention_heads, config.head_dim, config.hidden_size
        self.v_dim = D * self.opts.expand_v
        self.q_proj = nn.Linear(C, H * D, bias=config.attention_bias)
        self.k_proj = nn.Linear(C, H * D, bias=config.attention_bias)
        self.v_proj = nn.Linear(C, H * self.v_dim, bias=config.attention_bias)
        self.g_proj = nn.Linear(C, H * self.v_dim, bias=False) if self.opts.gate else None
        self.o_proj = nn.Linear(H * self.v_dim, C, bias=config.attention_out_bias)
        self.g_norm_weight = nn.Parameter(torch.ones(self.v_dim))
        self.register_buffer("log_decay", retnet_log_decay(H), persistent=False)
        self.register_buffer("inv_freq", default_inv_freq(D), persistent=False)

    def _xatl_init(self, std: float) -> None:
        init.ones_(self.g_norm_weight)
        init.copy_(self.log_decay, retnet_log_decay(self.num_heads))
        init.copy_(self.inv_freq, default_inv_freq(self.head_dim))

    def init_state(self, batch_size, device, dtype) -> State:
        return {"kv": torch.zeros(batch_size, self.num_heads, self.head_dim, self.v_dim, device=device,
                                  dtype=torch.float32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q = split_heads(self.q_proj(x), self.head_dim)                     # (B, H, T, D)
        k = split_heads(self.k_proj(x), self.head_dim) * self.head_dim**-0.5
        v = split_heads(self.v_proj(x), self.v_dim)                        # (B, H, T, Dv)
        if self.opts.use_rope:
            cos, sin = ctx.rope if ctx.rope is not None else rope_cos_sin(self.inv_freq, ctx.position_ids, x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = ctx.current_mask(T)
        if mask is not None:
            k, v = k * mask[:, None].to(k.dtype), v * mask[:, None].to(v.dtype)
        init_state = state["kv"] if state is not None else None
        form = self._form_for(T, state)
        kw = dict(initial_state=init_state, output_final_state=use_cache)
        if form == "chunked":
            o, final = chunk_retention(q, k, v, self.log_decay, chunk_size=self.opts.chunk_size, **kw)
        elif form == "naive":
            o, final = naive_retention(q, k, v, self.log_decay, **kw)
        else:
            o, final = recurrent_retention(q, k, v, self.log_decay, **kw)
        o = self._group_norm(o)                                            # (B, H, T, Dv)
        o = merge_heads(o)                                                 # (B, T, H * Dv)
        if self.g_proj is not None:
            o = o * F.silu(self.g_proj(x))
        return self.o_proj(o), ({"kv": final} if use_cache else None)

    def _group_norm(self, o: torch.Tensor) -> torch.Tensor:
        dtype = o.dtype
        h = o.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.opts.norm_eps)
        return self.g_norm_weight * h.to(dtype)

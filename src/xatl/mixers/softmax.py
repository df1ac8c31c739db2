"""``softmax``: the donor's own causal self-attention, exactly (RoPE incl. partial, GQA, biases, sliding window).

Used for hybrid layers and for the identity check (an all-softmax student must reproduce its donor). Its state
is a KV cache that grows with the context (B, H_kv, S, D): this is the cost the LCI mixers remove.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.rope import apply_rope
from .base import Mixer, MixerContext, State, merge_heads, split_heads


def donor_attention_projections(module: nn.Module, config, layer_idx: int) -> None:
    """Give ``module`` the donor's attention projections, exactly as the donor has them: q_proj (C -> H*D), k_proj
    and v_proj (C -> Hkv*D, grouped-query heads kept), o_proj (H*D -> C), with the donor's biases, plus
    ``num_kv_heads`` and the score ``scale`` (the donor's, incl. GPT-2's optional 1/(layer+1))."""
    H, Hkv, D, C = config.num_attention_heads, config.num_key_value_heads, config.head_dim, config.hidden_size
    module.num_kv_heads = Hkv
    module.q_proj = nn.Linear(C, H * D, bias=config.attention_bias)
    module.k_proj = nn.Linear(C, Hkv * D, bias=config.attention_bias)
    module.v_proj = nn.Linear(C, Hkv * D, bias=config.attention_bias)
    module.o_proj = nn.Linear(H * D, C, bias=config.attention_out_bias)
    scale = config.attention_scale if config.attention_scale is not None else D**-0.5
    if config.attention_scale_inverse_layer:
        scale /= float(layer_idx + 1)
    module.scale = scale


def donor_qkv(module: nn.Module, x: torch.Tensor, ctx: MixerContext):
    """Queries, keys and values of a module built by :func:`donor_attention_projections`, with the donor's RoPE
    applied to q and k: x (B, T, C) -> q (B, H, T, D), k and v (B, H_kv, T, D)."""
    q = split_heads(module.q_proj(x), module.head_dim)
    k = split_heads(module.k_proj(x), module.head_dim)
    v = split_heads(module.v_proj(x), module.head_dim)
    if ctx.rope is not None:
        q, k = apply_rope(q, *ctx.rope), apply_rope(k, *ctx.rope)
    return q, k, v


class SoftmaxAttention(Mixer):
    name = "softmax"
    recurrent = False
    keeps_donor_attention = True

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        donor_attention_projections(self, config, layer_idx)
        self.window = config.layer_window(layer_idx)

    def init_state(self, batch_size, device, dtype) -> State:
        shape = (batch_size, self.num_kv_heads, 0, self.head_dim)
        return {"k": torch.empty(shape, device=device, dtype=dtype), "v": torch.empty(shape, device=device, dtype=dtype)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C); state {"k", "v"}: (B, H_kv, S, D) keys/values of the S earlier tokens."""
        T = x.shape[1]
        q, k, v = donor_qkv(self, x, ctx)
        if state is not None and state["k"].shape[2] > 0:
            k = torch.cat([state["k"], k], dim=2)
            v = torch.cat([state["v"], v], dim=2)
        mask = self._mask(T, k.shape[2], ctx, x.device)
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and T > 1, scale=self.scale,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )                                                                 # (B, H, T, D)
        new_state = {"k": k, "v": v} if use_cache else None
        return self.o_proj(merge_heads(o)), new_state

    def _mask(self, T: int, S: int, ctx: MixerContext, device) -> torch.Tensor | None:
        """Boolean (B|1, 1, T, S) mask: causal, windowed, padded keys removed. None when plain causal suffices."""
        pad = ctx.attention_mask
        if pad is not None and bool(pad.all()):
            pad = None
        if pad is None and self.window is None and S == T:
            return None
        q_pos = torch.arange(S - T, S, device=device)[:, None]
        k_pos = torch.arange(S, device=device)[None, :]
        allowed = k_pos <= q_pos
        if self.window is not None:
            allowed = allowed & (k_pos > q_pos - self.window)
        allowed = allowed[None, None]                                     # (1, 1, T, S)
        if pad is not None:
            if pad.shape[1] < S:                                          # mask given for the new tokens only
                pad = F.pad(pad, (S - pad.shape[1], 0), value=1)
            allowed = allowed & pad[:, None, None, -S:].bool()
            # a query with no visible key (left padding) would give NaN; let it see everything (its output is
            # never read by a real token, since real tokens never attend to padding)
            allowed = allowed | ~allowed.any(-1, keepdim=True)
        return allowed

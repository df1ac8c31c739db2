"""``softmax``: the donor's own causal self-attention, exactly (RoPE incl. partial, GQA, biases, sliding window).

Used for hybrid layers and for the identity check (an all-softmax student must reproduce its donor). Its state
is a KV cache that grows with the context (B, H_kv, S, D): this is the cost the LCI mixers remove.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Mixer, MixerContext, State, merge_heads
from .projections import donor_attention_projections, donor_qkv


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

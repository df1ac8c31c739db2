"""``linear``: linear attention with a positive feature map and a normalising denominator.

    o_t = phi(q_t) S_t / (phi(q_t) . z_t + eps),  S_t = sum_s phi(k_s)^T v_s,  z_t = sum_s phi(k_s)

Feature maps (``feature_map``): elu+1, relu, and the learned T2R and Hedgehog maps (``feature_maps.py``; queries
and keys have a map each). Projections have the donor's geometry with full heads (H x D for q, k, v), so the
donor's Q/K/V/O copy in (K/V heads repeated for GQA donors).
State: {"kv": (B, H, F, D), "k_sum": (B, H, F)} (F = the map's output dim), independent of T.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops.linear_attention import FORMS
from ..ops.utils import run_form
from .base import Mixer, MixerContext, State, merge_heads, padding_mask, split_heads
from .feature_maps import FeatureMapOptions
from .projections import attention_projections, project_heads


@dataclass
class LinearOptions(FeatureMapOptions):
    eps: float = 1e-6
    """Added to the denominator."""
    normalize: bool = True
    """Divide by phi(q) . z (Katharopoulos); False keeps the raw numerator."""


class LinearAttention(Mixer):
    name = "linear"
    Options = LinearOptions
    fla_path = "simple_gla"          # no decay; the normaliser as one more value channel

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        attention_projections(self, config)
        self.q_map, self.k_map = self.opts.build_maps(self.num_heads, self.head_dim)

    def init_state(self, batch_size, device, dtype) -> State:
        H, D, F = self.num_heads, self.head_dim, self.k_map.out_dim
        return {"kv": torch.zeros(batch_size, H, F, D, device=device, dtype=torch.float32),
                "k_sum": torch.zeros(batch_size, H, F, device=device, dtype=torch.float32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q = self.q_map(project_heads(self, "q", x))                         # (B, H, T, F)
        k = self.k_map(project_heads(self, "k", x))
        v = split_heads(self.v_proj(x), self.head_dim)                     # (B, H, T, D)
        mask = padding_mask(ctx, T)
        if mask is not None:                                               # padding contributes nothing
            m = mask[:, None, :, None]
            k, v = k * m.to(k.dtype), v * m.to(v.dtype)
        init = (state["kv"], state["k_sum"]) if state is not None else None
        kw = dict(initial_state=init, output_final_state=use_cache, normalize=self.opts.normalize, eps=self.opts.eps)
        o, final = run_form(FORMS, self._form_for(T, state), q, k, v, **kw,
                            chunked=dict(chunk_size=self.opts.chunk_size, use_fla=self._use_fla(q)))
        new_state = {"kv": final[0], "k_sum": final[1]} if use_cache else None
        return self.o_proj(merge_heads(o)), new_state

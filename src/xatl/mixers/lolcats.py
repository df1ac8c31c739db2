"""``lolcats``: sliding-window softmax attention over the last ``window`` tokens plus linear attention with a learned
feature map (Hedgehog by default) over everything older, combined in one normalised sum per head (LoLCATs, Zhang
et al. 2024; the math is in ``xatl.ops.window_linear``).

The projections are the donor's own (H query heads, H_kv key/value heads, its RoPE, scale and biases), so the
donor's Q/K/V/O copy in unchanged and the window part *is* the donor's attention over the window; the feature
maps (applied to the rotated queries and keys, as in LoLCATs) and the per-head window factor are new. The
attention-transfer stage (``xatl heal``) trains just those to reproduce the donor's attention outputs.
State: {"k", "v": (B, H_kv, w, D) rotated keys/values of the last w positions, "valid": (B, w) bool,
"kv": (B, H, F, D), "k_sum": (B, H, F)}: fixed size, whatever the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init

from ..ops.utils import run_form
from ..ops.window_linear import FORMS
from .base import Mixer, MixerContext, State, merge_heads, padding_mask
from .feature_maps import FeatureMapOptions
from .projections import donor_attention_projections, donor_qkv

STATE_KEYS = ("k", "v", "valid", "kv", "k_sum")


@dataclass
class LolcatsOptions(FeatureMapOptions):
    feature_map: str = "hedgehog"
    """Feature map of the linear part (queries and keys have one each): hedgehog, t2r, elu or relu."""
    window: int = 64
    """Tokens each query sees through softmax attention (itself included); older ones go through the linear part."""
    init_window_factor: float = 0.0
    """Initial value of the per-head window-factor parameter; the softmax terms are scaled by its sigmoid (LoLCATs'
    default 0: factor 0.5; the linear terms have factor 1)."""

    def validate(self) -> None:
        super().validate()
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


class LolcatsAttention(Mixer):
    name = "lolcats"
    Options = LolcatsOptions
    init_notes = {"window_factor": "init_window_factor (sigmoid: the softmax terms' factor)"}

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        donor_attention_projections(self, config, layer_idx)
        self.q_map, self.k_map = self.opts.build_maps(self.num_heads, self.head_dim)
        self.window_factor = nn.Parameter(torch.empty(self.num_heads))
        self._xatl_init(0.0)

    def _xatl_init(self, std: float) -> None:
        init.constant_(self.window_factor, self.opts.init_window_factor)

    def init_state(self, batch_size, device, dtype) -> State:
        H, Hkv, D, w, Fd = self.num_heads, self.num_kv_heads, self.head_dim, self.opts.window, self.k_map.out_dim
        f32 = dict(device=device, dtype=torch.float32)
        return {"k": torch.zeros(batch_size, Hkv, w, D, **f32), "v": torch.zeros(batch_size, Hkv, w, D, **f32),
                "valid": torch.zeros(batch_size, w, device=device, dtype=torch.bool),
                "kv": torch.zeros(batch_size, H, Fd, D, **f32), "k_sum": torch.zeros(batch_size, H, Fd, **f32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q, k, v = donor_qkv(self, x, ctx)                                  # (B, H | H_kv, T, D), rotated
        init_state = tuple(state[key] for key in STATE_KEYS) if state is not None else None
        kw = dict(scale=self.scale, key_mask=padding_mask(ctx, T), initial_state=init_state,
                  output_final_state=use_cache)
        args = (q, k, v, self.q_map(q), self.k_map, torch.sigmoid(self.window_factor), self.opts.window)
        o, final = run_form(FORMS, self._form_for(T, state), *args, **kw, chunked=dict(chunk_size=self.opts.chunk_size))
        new_state = dict(zip(STATE_KEYS, final)) if use_cache else None
        return self.o_proj(merge_heads(o)), new_state

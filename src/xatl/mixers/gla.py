"""``gla``: gated linear attention (Yang et al., 2023): a data-dependent decay per key channel.

    g_t = logsigmoid(W_up W_down x_t + b) / gate_logit_normalizer               (low-rank gate, per head and channel)
    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = (q_t / sqrt(D)) S_t
    y = o_proj(groupnorm(o) * silu(g_proj(x)))                                 (per-head RMS norm, swish gate)

q, k, v have the donor's geometry with full heads (H x D), so the donor's Q/K/V/O copy in (K/V heads repeated for
GQA donors). State: {"kv": (B, H, D, D)}, independent of T. Padded positions add nothing and do not decay.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..ops.gla import FORMS
from ..ops.utils import run_form
from .base import LCIOptions, Mixer, MixerContext, State, head_rms_norm, merge_heads, padding_mask, split_heads
from .projections import attention_projections, project_heads


@dataclass
class GLAOptions(LCIOptions):
    gate_low_rank_dim: int = 16
    """Rank of the decay gate's projection (C -> r -> H * D)."""
    gate_logit_normalizer: float = 16.0
    """The gate's log decay is logsigmoid(.) / this (GLA's tau): larger values give slower decays."""
    output_gate: bool = True
    """Swish output gate silu(g_proj(x)); False drops g_proj."""
    norm_eps: float = 1e-6
    """Epsilon of the per-head RMS norm of the output."""

    def validate(self) -> None:
        super().validate()
        if self.gate_low_rank_dim < 1:
            raise ValueError(f"gate_low_rank_dim must be >= 1, got {self.gate_low_rank_dim}")
        if self.gate_logit_normalizer <= 0:
            raise ValueError(f"gate_logit_normalizer must be > 0, got {self.gate_logit_normalizer}")


class GatedLinearAttention(Mixer):
    name = "gla"
    fla_path = "gla"
    Options = GLAOptions

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        C, HD, r = config.hidden_size, config.num_attention_heads * config.head_dim, self.opts.gate_low_rank_dim

        def gates():                                                         # created between v_proj and o_proj
            self.gk_down = nn.Linear(C, r, bias=False)
            self.gk_up = nn.Linear(r, HD, bias=True)
            self.g_proj = nn.Linear(C, HD, bias=False) if self.opts.output_gate else None

        attention_projections(self, config, before_o=gates)
        self.g_norm_weight = nn.Parameter(torch.ones(config.head_dim))

    def _xatl_init(self, std: float) -> None:
        init.ones_(self.g_norm_weight)

    def init_state(self, batch_size, device, dtype) -> State:
        D = self.head_dim
        return {"kv": torch.zeros(batch_size, self.num_heads, D, D, device=device, dtype=torch.float32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q = project_heads(self, "q", x) * self.head_dim**-0.5               # (B, H, T, D)
        k = project_heads(self, "k", x)
        v = split_heads(self.v_proj(x), self.head_dim)
        gk = split_heads(self.gk_up(self.gk_down(x)), self.head_dim)
        g = F.logsigmoid(gk.float()) / self.opts.gate_logit_normalizer       # (B, H, T, D) log decay < 0
        mask = padding_mask(ctx, T)
        if mask is not None:                                                 # padding: no input, no decay
            m = mask[:, None, :, None]
            k, v, g = k * m.to(k.dtype), v * m.to(v.dtype), g * m
        kw = dict(initial_state=state["kv"] if state is not None else None, output_final_state=use_cache)
        o, final = run_form(FORMS, self._form_for(T, state), q, k, v, g, **kw,
                            chunked=dict(chunk_size=self.opts.chunk_size, use_fla=self._use_fla(x)))
        o = merge_heads(head_rms_norm(o, self.g_norm_weight, self.opts.norm_eps))   # (B, T, H * D)
        if self.g_proj is not None:
            o = o * F.silu(self.g_proj(x))
        return self.o_proj(o), ({"kv": final} if use_cache else None)

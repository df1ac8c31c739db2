"""``retention``: RetNet multi-scale retention (Sun et al., 2023).

Per head h a fixed decay gamma_h = 1 - 2^(-5 - h); positions enter through the donor's RoPE (xPos-style
rotation) when it has one, else a plain RoPE of the mixer's own; then a per-head RMS group norm and a swish
output gate:  y = o_proj(groupnorm(retention(q, k, v)) * silu(g_proj(x))).

``xpos=True`` adds xPos' exponential scaling (Sun et al., 2022): q_n scaled by zeta_i^(n / scale_base) and k_m by
zeta_i^(-m / scale_base) multiply the score of channel pair i by zeta_i^((n - m) / scale_base), a fixed decay per
key channel. It is applied in that relative form (folded into the decay and run through the GLA ops), so no
absolute-position factor can overflow however long the text.

State: {"kv": (B, H, D, Dv)}, independent of the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..ops.gla import FORMS as GLA_FORMS
from ..ops.retention import FORMS as RETENTION_FORMS
from ..ops.rope import apply_rope, default_inv_freq, rope_cos_sin
from ..ops.utils import run_form
from .base import LCIOptions, Mixer, MixerContext, State, head_rms_norm, merge_heads, padding_mask, split_heads
from .projections import attention_projections, project_heads


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
    xpos: bool = False
    """Add xPos' exponential scaling (as a per-key-channel decay zeta_i^(1/xpos_scale_base) per step)."""
    xpos_scale_base: float = 512.0
    """xPos' scale base (the paper's 512)."""

    def validate(self) -> None:
        super().validate()
        if self.expand_v < 1:
            raise ValueError(f"expand_v must be >= 1, got {self.expand_v}")
        if self.xpos_scale_base <= 0:
            raise ValueError(f"xpos_scale_base must be > 0, got {self.xpos_scale_base}")


def retnet_log_decay(num_heads: int) -> torch.Tensor:
    """log(gamma_h) = log(1 - 2^(-5 - h)), h = 0..H-1.  (H,)"""
    return torch.log(1 - 2.0 ** (-5.0 - torch.arange(num_heads, dtype=torch.float32)))


def xpos_log_decay(head_dim: int, scale_base: float) -> torch.Tensor:
    """log(zeta_i) / scale_base per channel, zeta_i = (i / (D/2) + 0.4) / 1.4 for the pair i = j mod D/2.  (D,)"""
    half = head_dim // 2
    i = torch.arange(head_dim, dtype=torch.float32) % max(half, 1)
    return torch.log((i / max(half, 1) + 0.4) / 1.4) / scale_base


class Retention(Mixer):
    name = "retention"
    fla_path = "simple_gla"
    Options = RetentionOptions

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        H, D, C = config.num_attention_heads, config.head_dim, config.hidden_size
        self.v_dim = D * self.opts.expand_v

        def gate():                                                          # created between v_proj and o_proj
            self.g_proj = nn.Linear(C, H * self.v_dim, bias=False) if self.opts.gate else None

        attention_projections(self, config, value_dim=self.v_dim, before_o=gate)
        self.g_norm_weight = nn.Parameter(torch.ones(self.v_dim))
        self.register_buffer("log_decay", retnet_log_decay(H), persistent=False)
        self.register_buffer("inv_freq", default_inv_freq(D), persistent=False)
        self.register_buffer("xpos_decay", xpos_log_decay(D, self.opts.xpos_scale_base), persistent=False)

    def _xatl_init(self, std: float) -> None:
        init.ones_(self.g_norm_weight)
        init.copy_(self.log_decay, retnet_log_decay(self.num_heads))
        init.copy_(self.inv_freq, default_inv_freq(self.head_dim))
        init.copy_(self.xpos_decay, xpos_log_decay(self.head_dim, self.opts.xpos_scale_base))

    def init_state(self, batch_size, device, dtype) -> State:
        return {"kv": torch.zeros(batch_size, self.num_heads, self.head_dim, self.v_dim, device=device,
                                  dtype=torch.float32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q = project_heads(self, "q", x)                                    # (B, H, T, D)
        k = project_heads(self, "k", x) * self.head_dim**-0.5
        v = split_heads(self.v_proj(x), self.v_dim)                        # (B, H, T, Dv)
        if self.opts.use_rope:
            cos, sin = ctx.rope if ctx.rope is not None else rope_cos_sin(self.inv_freq, ctx.position_ids, x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = padding_mask(ctx, T)
        if mask is not None:
            m = mask[:, None, :, None]
            k, v = k * m.to(k.dtype), v * m.to(v.dtype)
        init_state = state["kv"] if state is not None else None
        o, final = self._retain(q, k, v, self._form_for(T, state), init_state, use_cache)
        o = self._group_norm(o)                                            # (B, H, T, Dv)
        o = merge_heads(o)                                                 # (B, T, H * Dv)
        if self.g_proj is not None:
            o = o * F.silu(self.g_proj(x))
        return self.o_proj(o), ({"kv": final} if use_cache else None)

    def _retain(self, q, k, v, form: str, init_state, use_cache: bool):
        """The retention op of ``form``: per-head decay, or per-(head, channel) decay with xPos."""
        if self.opts.xpos:                                                 # (B, H, T, D): GLA's ops
            forms, decay = GLA_FORMS, (self.log_decay[:, None, None] + self.xpos_decay).expand(*q.shape)
        else:                                                              # (H,): retention's
            forms, decay = RETENTION_FORMS, self.log_decay
        return run_form(forms, form, q, k, v, decay, initial_state=init_state, output_final_state=use_cache,
                        chunked=dict(chunk_size=self.opts.chunk_size, use_fla=self._use_fla(q)))

    def _group_norm(self, o: torch.Tensor) -> torch.Tensor:
        return head_rms_norm(o, self.g_norm_weight, self.opts.norm_eps)

"""``mamba2``: the Mamba-2 block (SSD, Dao & Gu, 2024): a scalar decay per head and step, multi-head.

    x, B, C = silu(conv1d([x_proj(u); B_proj(u); C_proj(u)]))          (mamba_ssm's in_proj, split; one conv)
    dt = softplus(dt_proj(u) + dt_bias)                                 (H_ssm,) per token
    S_t = exp(dt_t A_h) S_{t-1} + B_t^T (dt_t x_t),  y_t = C_t S_t + D_h x_t      per head h (A_h = -exp(A_log_h))
    out = out_proj(rmsnorm(y * silu(z_proj(u))))                        (gated RMS norm per group)

Geometry chosen for transfer ("The Mamba in the Llama"): head dim P = the donor's head_dim, H_ssm = expand * H
heads, d_state N = head_dim and ngroups = H (B and C have one head per donor query head, shared by ``expand``
SSM heads). So C <- Q exactly, B <- K and x <- V with GQA heads repeated, out <- O.

State: {"conv": (B, D_in + 2 H N, d_conv - 1) (model dtype), "ssm": (B, H_ssm, N, P) float32}, independent of T.
Padded positions: zeroed before the convolution and dt = 0 (no input, no decay).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..ops.conv import causal_conv1d
from ..ops.ssd import FORMS
from ..ops.utils import run_form
from .base import Mixer, MixerContext, Slot, State, head_rms_norm, merge_heads, padding_mask, split_heads
from .mamba import SSMOptions, init_conv, init_dt_bias


@dataclass
class Mamba2Options(SSMOptions):
    d_state: int | None = None
    """SSM state size N per head; None = head_dim (lets the donor's Q and K transfer into C and B)."""
    A_init_max: float = 16.0
    """A_h = -exp(A_log_h) starts uniform in [1, A_init_max] (Mamba-2's init)."""
    norm_eps: float = 1e-5
    """Epsilon of the gated RMS norm."""

    def validate(self) -> None:
        super().validate()
        if self.d_state is not None and self.d_state < 1:
            raise ValueError(f"d_state must be >= 1, got {self.d_state}")
        if self.A_init_max < 1:
            raise ValueError(f"A_init_max must be >= 1, got {self.A_init_max}")


class Mamba2(Mixer):
    name = "mamba2"
    fla_path = "simple_gla"
    Options = Mamba2Options
    init_notes = {"A_log": "log(uniform[1, A_init_max]) per head", "D": "ones", "norm_weight": "ones",
                  "dt_bias": "softplus^-1 of dt log-uniform in [dt_min, dt_max]",
                  "conv_weight": "identity (newest tap 1) or uniform, per conv_init", "conv_bias": "zeros or uniform"}

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        C, H, P = config.hidden_size, config.num_attention_heads, config.head_dim
        o = self.opts
        self.n_groups, self.ssm_heads, self.d_state = H, o.expand * H, o.d_state or P
        self.d_inner = self.ssm_heads * P
        self.conv_dim = self.d_inner + 2 * H * self.d_state
        self.x_proj = nn.Linear(C, self.d_inner, bias=config.attention_bias)
        self.z_proj = nn.Linear(C, self.d_inner, bias=False)
        self.B_proj = nn.Linear(C, H * self.d_state, bias=config.attention_bias)
        self.C_proj = nn.Linear(C, H * self.d_state, bias=config.attention_bias)
        self.dt_proj = nn.Linear(C, self.ssm_heads, bias=False)
        self.conv_weight = nn.Parameter(torch.empty(self.conv_dim, o.d_conv))
        self.conv_bias = nn.Parameter(torch.empty(self.conv_dim))
        self.dt_bias = nn.Parameter(torch.empty(self.ssm_heads))
        self.A_log = nn.Parameter(torch.empty(self.ssm_heads))
        self.D = nn.Parameter(torch.empty(self.ssm_heads))
        self.norm_weight = nn.Parameter(torch.empty(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, C, bias=config.attention_out_bias)
        self._xatl_init(config.initializer_range)                            # usable when built alone

    def _xatl_init(self, std: float) -> None:
        o = self.opts
        init.copy_(self.A_log, torch.log(torch.empty(self.ssm_heads).uniform_(1.0, o.A_init_max)))
        init.ones_(self.D)
        init.ones_(self.norm_weight)
        init_dt_bias(self.dt_bias, o.dt_min, o.dt_max)
        init_conv(self.conv_weight, self.conv_bias, o.conv_init)

    def transfer_slots(self) -> dict[str, Slot | str]:
        slots: dict[str, Slot | str] = {"q": Slot("C_proj", "C <- Q"), "k": Slot("B_proj", "B <- K"),
                                        "v": Slot("x_proj", "x <- V"), "o": Slot("out_proj", "out <- O")}
        for name, part in (("q_norm", "C"), ("k_norm", "B")):
            slots[name] = (f"mamba2 passes {part} through its causal conv and SiLU before the scan, so the donor's "
                           f"{name} (a norm of the raw projection) has no place")
        if self.d_state != self.head_dim:
            why = f"mamba2 d_state ({self.d_state}) differs from the donor's head_dim ({self.head_dim})"
            slots.update(q=f"{why}: C heads cannot hold Q heads", k=f"{why}: B heads cannot hold K heads")
        if self.opts.expand != 1:
            why = f"mamba2 expand={self.opts.expand}: its {self.ssm_heads} SSM heads do not match the donor's heads"
            slots.update(v=f"{why} (x <- V needs expand=1)", o=f"{why} (out <- O needs expand=1)")
        return slots

    def init_state(self, batch_size, device, dtype) -> State:
        P = self.head_dim
        return {"conv": torch.zeros(batch_size, self.conv_dim, self.opts.d_conv - 1, device=device, dtype=dtype),
                "ssm": torch.zeros(batch_size, self.ssm_heads, self.d_state, P, device=device, dtype=torch.float32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T, P, N, rep = x.shape[1], self.head_dim, self.d_state, self.opts.expand
        mask = padding_mask(ctx, T)
        xbc = torch.cat([self.x_proj(x), self.B_proj(x), self.C_proj(x)], -1)    # (B, T, conv_dim)
        if mask is not None:
            xbc = xbc * mask[..., None].to(xbc.dtype)
        xbc, conv_state = causal_conv1d(xbc, self.conv_weight, self.conv_bias,
                                        state["conv"] if state is not None else None, use_cache)
        xs, Bm, Cm = F.silu(xbc).split([self.d_inner, self.n_groups * N, self.n_groups * N], -1)
        dt = F.softplus(self.dt_proj(x).float() + self.dt_bias.float())          # (B, T, H_ssm)
        if mask is not None:
            dt = dt * mask[..., None]
        dt = dt.transpose(1, 2)                                                  # (B, H_ssm, T)
        xs = split_heads(xs, P)                                                  # (B, H_ssm, T, P)
        q = split_heads(Cm, N).repeat_interleave(rep, 1)                         # (B, H_ssm, T, N)
        k = split_heads(Bm, N).repeat_interleave(rep, 1)
        g = dt * -torch.exp(self.A_log.float())[:, None]                         # (B, H_ssm, T) log decay
        v = xs * dt[..., None].to(xs.dtype)
        y, ssm_state = self._scan(q, k, v, g, self._form_for(T, state), state, use_cache)
        y = merge_heads(y + xs * self.D.to(xs.dtype)[:, None, None])            # (B, T, D_in)
        y = y * F.silu(self.z_proj(x))
        group = self.d_inner // self.n_groups
        y = head_rms_norm(y.unflatten(-1, (self.n_groups, group)), self.norm_weight.view(-1, group),
                          self.opts.norm_eps).flatten(-2)
        return self.out_proj(y), ({"conv": conv_state, "ssm": ssm_state} if use_cache else None)

    def _scan(self, q, k, v, g, form: str, state, use_cache: bool):
        return run_form(FORMS, form, q, k, v, g, initial_state=state["ssm"] if state is not None else None,
                        output_final_state=use_cache,
                        chunked=dict(chunk_size=self.opts.chunk_size, use_fla=self._use_fla(q)))

"""``mamba``: Mamba's selective SSM block (S6, Gu & Dao, 2023).

    x = silu(conv1d(x_proj(u)))   z = z_proj(u)                        (mamba_ssm's in_proj = [x_proj; z_proj])
    dt, B, C = split(dbc_proj(x))                                       (mamba_ssm's x_proj)
    dt = softplus(dt_proj(dt) + dt_bias)                                (D_in,) per token, > 0
    h_t = exp(dt A) h_{t-1} + dt x_t B_t,  y_t = C_t h_t + D x_t        (A = -exp(A_log): (D_in, N))
    out = out_proj(y * silu(z))

D_in = expand * H * D_head: with expand 1 the donor's V lands in x_proj (heads repeated for GQA) and its O in
out_proj. The donor's Q and K have no place: S6 computes B and C from the convolved inner activations (D_in -> N),
not from the block input, so the report says why; ``mamba2`` takes them (C <- Q, B <- K).

State: {"conv": (B, D_in, d_conv - 1) (model dtype), "ssm": (B, D_in, N) float32}, independent of T.
Padded positions: their x is zeroed before the convolution and their dt is 0 (no input, no decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..ops.conv import causal_conv1d
from ..ops.selective_scan import FORMS
from ..ops.utils import run_form
from .base import LCIOptions, Mixer, MixerContext, Slot, State, padding_mask

CONV_INITS = ("identity", "uniform")


@dataclass
class SSMOptions(LCIOptions):
    """Options shared by ``mamba`` and ``mamba2``."""

    expand: int = 1
    """Inner width = expand * num_heads * head_dim (1 lets the donor's V and O transfer)."""
    d_conv: int = 4
    """Width of the causal depthwise convolution."""
    conv_init: str = "identity"
    """"identity" (a pass-through: transferred projections keep their meaning) or "uniform" (PyTorch's default)."""
    dt_min: float = 0.001
    """Smallest initial step size dt (dt_bias is set so that softplus(dt_bias) spans [dt_min, dt_max])."""
    dt_max: float = 0.1
    """Largest initial step size dt."""

    def validate(self) -> None:
        super().validate()
        if self.expand < 1 or self.d_conv < 1:
            raise ValueError(f"expand and d_conv must be >= 1, got {self.expand} and {self.d_conv}")
        if self.conv_init not in CONV_INITS:
            raise ValueError(f"conv_init must be one of {', '.join(CONV_INITS)}; got {self.conv_init!r}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {self.dt_min} and {self.dt_max}")


@dataclass
class MambaOptions(SSMOptions):
    chunk_size: int = 16
    """Chunk length of the chunked scan (short chunks keep it on the fast exact path for larger dt)."""
    d_state: int = 16
    """SSM state size N per channel."""
    dt_rank: int | None = None
    """Rank of the dt projection; None = ceil(hidden_size / 16) (Mamba's default)."""

    def validate(self) -> None:
        super().validate()
        if self.d_state < 1 or (self.dt_rank is not None and self.dt_rank < 1):
            raise ValueError(f"d_state and dt_rank must be >= 1, got {self.d_state} and {self.dt_rank}")


def init_dt_bias(param: torch.Tensor, dt_min: float, dt_max: float) -> None:
    """dt_bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max] (Mamba's init)."""
    dt = torch.exp(torch.rand(param.shape) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=1e-4)
    init.copy_(param, dt + torch.log(-torch.expm1(-dt)))


def init_conv(weight: torch.Tensor, bias: torch.Tensor, mode: str) -> None:
    """weight (Ch, K): "identity" = 1 on the newest tap, else PyTorch's Conv1d default (uniform +-1/sqrt(K))."""
    if mode == "identity":
        w = torch.zeros(weight.shape)
        w[:, -1] = 1.0
        init.copy_(weight, w)
        init.zeros_(bias)
    else:
        bound = 1.0 / math.sqrt(weight.shape[1])
        init.uniform_(weight, -bound, bound)
        init.uniform_(bias, -bound, bound)


class Mamba(Mixer):
    name = "mamba"
    Options = MambaOptions
    init_notes = {"A_log": "log(1..d_state) per channel (S4D-real)", "D": "ones",
                  "dt_bias": "softplus^-1 of dt log-uniform in [dt_min, dt_max]",
                  "conv_weight": "identity (newest tap 1) or uniform, per conv_init", "conv_bias": "zeros or uniform"}

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        C = config.hidden_size
        o = self.opts
        self.d_inner = o.expand * config.num_attention_heads * config.head_dim
        self.dt_rank = o.dt_rank or math.ceil(C / 16)
        di, N = self.d_inner, o.d_state
        self.x_proj = nn.Linear(C, di, bias=config.attention_bias)
        self.z_proj = nn.Linear(C, di, bias=False)
        self.conv_weight = nn.Parameter(torch.empty(di, o.d_conv))
        self.conv_bias = nn.Parameter(torch.empty(di))
        self.dbc_proj = nn.Linear(di, self.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di, bias=False)
        self.dt_bias = nn.Parameter(torch.empty(di))
        self.A_log = nn.Parameter(torch.empty(di, N))
        self.D = nn.Parameter(torch.empty(di))
        self.out_proj = nn.Linear(di, C, bias=config.attention_out_bias)
        self._xatl_init(config.initializer_range)                            # usable when built alone

    def _xatl_init(self, std: float) -> None:
        o = self.opts
        init.copy_(self.A_log, torch.log(torch.arange(1, o.d_state + 1, dtype=torch.float32)).expand_as(self.A_log))
        init.ones_(self.D)
        init_dt_bias(self.dt_bias, o.dt_min, o.dt_max)
        init_conv(self.conv_weight, self.conv_bias, o.conv_init)

    def transfer_slots(self) -> dict[str, Slot | str]:
        why = ("mamba (S6) computes B and C from the convolved inner activations (d_inner -> d_state), not from the "
               "block input, so the donor's {} projection has no place (mamba2 takes Q as C and K as B)")
        slots: dict[str, Slot | str] = {"q": why.format("Q"), "k": why.format("K"), "v": Slot("x_proj", "x <- V"),
                                        "o": Slot("out_proj", "out <- O")}
        for name in ("q_norm", "k_norm"):
            slots[name] = f"mamba takes no Q or K from the donor, so the donor's {name} has no place"
        if self.opts.expand != 1:
            why = f"mamba expand={self.opts.expand}: d_inner ({self.d_inner}) is not the donor's heads x head_dim"
            slots.update(v=f"{why} (x <- V needs expand=1)", o=f"{why} (out <- O needs expand=1)")
        return slots

    def init_state(self, batch_size, device, dtype) -> State:
        return {"conv": torch.zeros(batch_size, self.d_inner, self.opts.d_conv - 1, device=device, dtype=dtype),
                "ssm": torch.zeros(batch_size, self.d_inner, self.opts.d_state, device=device, dtype=torch.float32)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T, N = x.shape[1], self.opts.d_state
        mask = padding_mask(ctx, T)
        xs = self.x_proj(x)                                                  # (B, T, D_in)
        if mask is not None:
            xs = xs * mask[..., None].to(xs.dtype)
        xs, conv_state = causal_conv1d(xs, self.conv_weight, self.conv_bias,
                                       state["conv"] if state is not None else None, use_cache)
        xs = F.silu(xs)
        dt, Bm, Cm = self.dbc_proj(xs).split([self.dt_rank, N, N], -1)       # (B, T, R), (B, T, N), (B, T, N)
        dt = F.softplus(self.dt_proj(dt).float() + self.dt_bias.float())     # (B, T, D_in)
        if mask is not None:
            dt = dt * mask[..., None]
        A = -torch.exp(self.A_log.float())
        kw = dict(initial_state=state["ssm"] if state is not None else None, output_final_state=use_cache)
        y, ssm_state = run_form(FORMS, self._form_for(T, state), Cm, Bm, xs, dt, A, **kw,
                                chunked=dict(chunk_size=self.opts.chunk_size))
        y = (y + xs * self.D.to(xs.dtype)) * F.silu(self.z_proj(x))
        return self.out_proj(y), ({"conv": conv_state, "ssm": ssm_state} if use_cache else None)

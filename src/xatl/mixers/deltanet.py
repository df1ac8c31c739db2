"""``deltanet`` and ``gated_deltanet``: linear attention with the delta rule (Yang et al., 2024: DeltaNet; Yang,
Kautz and Hatamizadeh, 2024: Gated DeltaNet, the mixer of Qwen3-Next), after flash-linear-attention's layers
``fla/layers/delta_net.py`` and ``fla/layers/gated_deltanet.py``:

    q, k, v = silu(conv(q_proj(x))), silu(conv(k_proj(x))), silu(conv(v_proj(x)))   (short causal convs, optional)
    q, k = l2norm(q) / sqrt(D), l2norm(k)          beta = sigmoid(b_proj(x))            (one beta per head and step)
    g = -exp(A_log) softplus(a_proj(x) + dt_bias)                                        (gated only: Mamba-2's decay)
    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = q_t S_t     (xatl.ops.delta_rule)
    y = o_proj(rmsnorm(o) [* silu(g_proj(x))])                                           (per head; gate optional)

q, k, v have the donor's geometry with full heads (H x D; a GQA donor's K/V heads are repeated by the transfer, as
for gla and retention), so the donor's Q/K/V/O copy in (and its q/k norms, applied to the projections before the
convolutions, where the donor has them). No RoPE (as in fla). Departures from fla, for transfer:
the short convolutions start as the identity (``conv_init``; fla: PyTorch's random Conv1d init) so that copied
projections keep their meaning; the value head dim is the donor's (fla's Gated DeltaNet widens it by 2).

State: {"conv": (B, 3 H D, conv_size - 1) (model dtype; only with short convs), "kv": (B, H, D, D) float32, fla's
(K, V) layout}, independent of T. Padded positions: zeroed before the convolutions, beta = 0 (no write) and g = 0
(no decay), so they leave the state as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..ops.conv import causal_conv1d
from ..ops.delta_rule import FORMS
from ..ops.utils import run_form
from .base import LCIOptions, Mixer, MixerContext, State, head_rms_norm, merge_heads, padding_mask, split_heads
from .mamba import CONV_INITS, init_dt_bias
from .projections import attention_projections, project_heads


@dataclass
class DeltaNetOptions(LCIOptions):
    chunk_size: int = 32
    """Chunk length of the chunked form (32: 5-15% faster than 64 on a 2-core CPU at T = 2k-8k, forward+backward;
    fla's GPU kernels use 64 whatever this says)."""
    use_short_conv: bool = True
    """Depthwise causal convolutions on q, k and v before their SiLU (fla's default; fla warns they matter)."""
    conv_size: int = 4
    """Kernel width of the short convolutions."""
    conv_init: str = "identity"
    """"identity" (a pass-through: transferred projections keep their meaning) or "uniform" (fla's, PyTorch's
    Conv1d default)."""
    use_gate: bool = False
    """Output gate: rmsnorm(o) * silu(g_proj(x)) (fla's FusedRMSNormGated); False: rmsnorm(o) alone (fla's default
    for DeltaNet)."""
    allow_neg_eigval: bool = False
    """beta = 2 sigmoid(.) in (0, 2): transitions with negative eigenvalues (Grazzi et al., 2024)."""
    norm_eps: float = 1e-5
    """Epsilon of the per-head output RMS norm."""

    def validate(self) -> None:
        super().validate()
        if self.conv_size < 1:
            raise ValueError(f"conv_size must be >= 1, got {self.conv_size}")
        if self.conv_init not in CONV_INITS:
            raise ValueError(f"conv_init must be one of {', '.join(CONV_INITS)}; got {self.conv_init!r}")
        if self.norm_eps <= 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")


@dataclass
class GatedDeltaNetOptions(DeltaNetOptions):
    use_gate: bool = True
    """Output gate: rmsnorm(o) * silu(g_proj(x)) (fla's FusedRMSNormGated, its default for Gated DeltaNet)."""
    A_init_max: float = 16.0
    """A_h = exp(A_log_h) starts uniform in (0, A_init_max] (fla's init)."""
    dt_min: float = 0.001
    """Smallest initial step dt = softplus(dt_bias) (fla's / Mamba-2's init)."""
    dt_max: float = 0.1
    """Largest initial step dt."""

    def validate(self) -> None:
        super().validate()
        if self.A_init_max <= 0:
            raise ValueError(f"A_init_max must be > 0, got {self.A_init_max}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {self.dt_min} and {self.dt_max}")


def l2_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(sum(x^2) + eps) over the last dim, in float32 (fla's ``l2norm``)."""
    x = x.float()
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps)


class DeltaNet(Mixer):
    name = "deltanet"
    fla_path = "delta"
    Options = DeltaNetOptions
    gated: ClassVar[bool] = False
    """Gated DeltaNet's decay gate (a_proj, A_log, dt_bias)."""
    init_notes = {"conv_weight": "identity (newest tap 1) or uniform, per conv_init", "norm_weight": "ones"}

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        C, H, D = config.hidden_size, config.num_attention_heads, config.head_dim

        def gates():                                                         # created between v_proj and o_proj
            self.b_proj = nn.Linear(C, H, bias=False)
            self.a_proj = nn.Linear(C, H, bias=False) if self.gated else None
            self.g_proj = nn.Linear(C, H * D, bias=False) if self.opts.use_gate else None

        attention_projections(self, config, before_o=gates)
        self.conv_dim = 3 * H * D
        self.conv_weight = (nn.Parameter(torch.empty(self.conv_dim, self.opts.conv_size))
                            if self.opts.use_short_conv else None)
        self.norm_weight = nn.Parameter(torch.empty(D))
        if self.gated:
            self.A_log = nn.Parameter(torch.empty(H))
            self.dt_bias = nn.Parameter(torch.empty(H))
        self._xatl_init(config.initializer_range)                            # usable when built alone

    def _xatl_init(self, std: float) -> None:
        init.ones_(self.norm_weight)
        if self.gated:
            A = torch.empty(self.num_heads).uniform_(0, self.opts.A_init_max).clamp(min=1e-4)
            init.copy_(self.A_log, torch.log(A))
            init_dt_bias(self.dt_bias, self.opts.dt_min, self.opts.dt_max)
        if self.conv_weight is not None:
            if self.opts.conv_init == "identity":
                w = torch.zeros(self.conv_weight.shape)
                w[:, -1] = 1.0
                init.copy_(self.conv_weight, w)
            else:
                bound = 1.0 / math.sqrt(self.opts.conv_size)
                init.uniform_(self.conv_weight, -bound, bound)

    def init_state(self, batch_size, device, dtype) -> State:
        D = self.head_dim
        state = {"kv": torch.zeros(batch_size, self.num_heads, D, D, device=device, dtype=torch.float32)}
        if self.conv_weight is not None:
            state["conv"] = torch.zeros(batch_size, self.conv_dim, self.opts.conv_size - 1, device=device, dtype=dtype)
        return state

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T, D = x.shape[1], self.head_dim
        mask = padding_mask(ctx, T)
        q, k = (merge_heads(project_heads(self, part, x)) for part in "qk")      # (B, T, H D), donor's q/k norm
        qkv = torch.cat([q, k, self.v_proj(x)], -1)                               # (B, T, 3 H D)
        if mask is not None:
            qkv = qkv * mask[..., None].to(qkv.dtype)
        conv_state = None
        if self.conv_weight is not None:
            qkv, conv_state = causal_conv1d(qkv, self.conv_weight, None, state["conv"] if state is not None else None,
                                            use_cache)
        q, k, v = (split_heads(t, D) for t in F.silu(qkv).chunk(3, -1))           # (B, H, T, D)
        q, k = l2_norm(q) * D**-0.5, l2_norm(k)
        beta, g = self._beta_gate(x, mask)                                         # (B, H, T); g None if plain
        o, kv = run_form(FORMS, self._form_for(T, state), q, k, v, beta, g,
                         initial_state=state["kv"] if state is not None else None, output_final_state=use_cache,
                         chunked=dict(chunk_size=self.opts.chunk_size, use_fla=self._use_fla(x)))
        o = head_rms_norm(o, self.norm_weight, self.opts.norm_eps)                # (B, H, T, D)
        if self.g_proj is not None:
            o = o * F.silu(split_heads(self.g_proj(x), D))
        new_state = None
        if use_cache:
            new_state = {"kv": kv} if conv_state is None else {"conv": conv_state, "kv": kv}
        return self.o_proj(merge_heads(o)), new_state

    def _beta_gate(self, x, mask):
        """beta = sigmoid(b_proj(x)) (x2 with negative eigenvalues) and, when gated, the log decay g; both (B, H, T)
        float32, 0 at padded positions (no write, no decay)."""
        beta = torch.sigmoid(self.b_proj(x).float()) * (2.0 if self.opts.allow_neg_eigval else 1.0)
        g = None
        if self.gated:
            g = -torch.exp(self.A_log.float()) * F.softplus(self.a_proj(x).float() + self.dt_bias.float())
        if mask is not None:
            m = mask[..., None].float()
            beta, g = beta * m, (g * m if g is not None else None)
        return beta.transpose(1, 2), (g.transpose(1, 2) if g is not None else None)


class GatedDeltaNet(DeltaNet):
    name = "gated_deltanet"
    Options = GatedDeltaNetOptions
    gated = True
    init_notes = {**DeltaNet.init_notes, "A_log": "log(uniform(0, A_init_max]) per head (fla's init)",
                  "dt_bias": "softplus^-1 of dt log-uniform in [dt_min, dt_max] (fla's init)"}

"""The token-mixer interface. A new mixer slots in by subclassing `Mixer` and adding one line to
``xatl.mixers.registry.MIXERS``; the student model, the cache and the transfer never change.

A mixer maps (B, T, C) -> (B, T, C) and owns:

* ``forward(x, ctx, state=None, use_cache=False) -> (y, new_state)``: the parallel/chunked form for training
  and prefill (continuing from ``state`` when given), and the recurrent one-token step when ``T == 1`` and a
  state is given. ``new_state`` is returned when ``use_cache``.
* ``init_state(batch_size, device, dtype) -> State``: an empty state (mamba_ssm's ``allocate_inference_cache``).
* ``transfer_slots() -> {"q"|"k"|"v"|"o"|"q_norm"|"k_norm": Slot | reason}``: where the donor's attention
  projections (and its q/k norms, for donors that have them) land.
* ``_xatl_init(std)``: initialise the parameters/buffers it owns directly (not those of child modules).

A state is a flat ``dict[str, Tensor]`` whose tensors all have the batch as dim 0, so caches can reorder
(beam search) and measure it generically. For LCI mixers its size does not depend on the sequence length.

LCI mixers take `LCIOptions` (``chunk_size``, ``form``: which op form runs T > 1, ``kernels``: "torch" or the
optional "fla" GPU kernels) and must honour the context's padding mask: padded positions add nothing to the state
(and do not decay it). Helpers for mixers: `split_heads`, `merge_heads`, `padding_mask`, `head_rms_norm`.
Mixers with parameters of their own call ``self._xatl_init`` at the end of ``__init__`` too, so that a mixer
built on its own (outside a student) is usable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..ops.fla_backend import fla_delta_usable, fla_usable

if TYPE_CHECKING:
    from ..models.configuration_xatl import XATLConfig

State = dict[str, torch.Tensor]
FORMS = ("chunked", "naive", "recurrent")
KERNELS = ("torch", "fla", "auto")


@dataclass
class MixerContext:
    """What every mixer may read about the current forward call.

    position_ids: (B, T) absolute positions of the current tokens.
    rope: the donor's rotary (cos, sin), each (B, T, R) with R <= head_dim; None if the donor has no RoPE.
    attention_mask: (B, S + T), 1 = token, 0 = padding, over the S cached and T current tokens; None = no padding.
    rope_at: the same rotary at other positions: position_ids (B, T) -> (cos, sin), each (B, T, R).
    """

    position_ids: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor] | None = None
    attention_mask: torch.Tensor | None = None
    rope_at: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    _capped: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def rope_capped(self, limit: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotary (cos, sin) at min(position, ``limit``), each (B, T, R); None while no position passes
        ``limit`` (or without RoPE). Computed once per forward call for every layer that asks."""
        return self._rope_past(("capped", limit), limit, lambda p: p.clamp(max=limit))

    def rope_fixed(self, position: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotary (cos, sin) at ``position`` for every token, each (B, T, R) (queries that meet a key as if
        ``position`` tokens apart); None while no position passes it (no key can be further back), or without
        RoPE. Computed once per forward call."""
        return self._rope_past(("fixed", position), position, lambda p: torch.full_like(p, position))

    def logn_factor(self, base: int) -> torch.Tensor | None:
        """max(1, log(t + 1) / log(``base``)) at each position t, (B, 1, T, 1); None while no position reaches
        ``base``. Computed once per forward call for every layer that asks."""
        key = ("logn", base)
        if key not in self._capped:
            p = self.position_ids
            self._capped[key] = (None if int(p.max()) + 1 <= base else
                                 (torch.log1p(p.float()) / math.log(base)).clamp(min=1.0)[:, None, :, None])
        return self._capped[key]

    def _rope_past(self, key: tuple, limit: int, positions: Callable[[torch.Tensor], torch.Tensor]):
        """The rotary at ``positions(position_ids)``, memoised under ``key``, if some position passes ``limit``."""
        if self.rope is None:
            return None
        if key not in self._capped:
            out = None
            if int(self.position_ids.max()) > limit:
                if self.rope_at is None:
                    raise ValueError("positions past a cap need MixerContext.rope_at (the rotary at other positions)")
                out = self.rope_at(positions(self.position_ids))
            self._capped[key] = out
        return self._capped[key]

    def current_mask(self, T: int) -> torch.Tensor | None:
        """(B, T, 1) float mask of the current tokens (to zero padded keys/values), or None without padding."""
        if self.attention_mask is None:
            return None
        return self.attention_mask[:, -T:, None]


@dataclass(frozen=True)
class Slot:
    """Where a donor attention projection lands: the name of an ``nn.Linear`` child of the mixer.

    Shapes are matched by the transfer: equal shapes copy as they are; a target with ``H / H_kv`` times the
    donor's rows repeats the donor's K/V heads (GQA). ``note`` is written to the transfer report.
    """

    module: str
    note: str = ""


@dataclass
class MixerOptions:
    """Options shared by every mixer (none). Subclasses are dataclasses whose fields carry docstrings."""

    def validate(self) -> None:
        """Raise ValueError for a bad value (called after construction)."""


@dataclass
class LCIOptions(MixerOptions):
    chunk_size: int = 64
    """Chunk length of the chunked form (training/prefill)."""
    form: str = "chunked"
    """Which form runs sequences with T > 1: "chunked" (default), "naive" (quadratic reference) or "recurrent"."""
    kernels: str = "torch"
    """Chunked-form kernels: "torch" (default, the reference), "fla" (flash-linear-attention's Triton kernels; refused
    in one line where they cannot run: CPU inputs, fla not installed, a mixer without an fla path) or "auto" (fla's
    on CUDA inputs when it imports, else torch). Mixers with an fla path: gla, mamba2, retention, deltanet,
    gated_deltanet."""

    def validate(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}; got {self.form!r}")
        if self.kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(KERNELS)}; got {self.kernels!r}")


class Mixer(nn.Module):
    """Base class of token mixers (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[MixerOptions]] = MixerOptions
    recurrent: ClassVar[bool] = True
    """True when the state has a fixed size (linear cost); False for softmax attention's growing KV cache."""
    fla_path: ClassVar[str | None] = None
    """Which flash-linear-attention kernels the chunked form can run ("simple_gla", "gla" or "delta"; None: none), for
    ``kernels="fla"`` / ``"auto"``."""
    keeps_donor_attention: ClassVar[bool] = False
    """True when the layer is the donor's own attention, kept as it is (softmax): nothing to align or heal, its
    weights copy whatever the copy set, and it bounds the context to the donor's ``max_position_embeddings``."""

    def __init__(self, config: XATLConfig, layer_idx: int, **options: Any):
        super().__init__()
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.opts = self.Options(**options)
        self.opts.validate()
        if getattr(self.opts, "kernels", "torch") == "fla" and self.fla_path is None:
            from .registry import MIXERS

            have = ", ".join(name for name, cls in MIXERS.items() if cls.fla_path is not None)
            raise ConfigError(f"mixer {self.name!r} has no flash-linear-attention path; use kernels='torch' or 'auto' "
                              f"(fla kernels exist for {have})")

    def forward(self, x: torch.Tensor, ctx: MixerContext, state: State | None = None,
                use_cache: bool = False) -> tuple[torch.Tensor, State | None]:
        raise NotImplementedError

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        raise NotImplementedError

    def transfer_slots(self) -> dict[str, Slot | str]:
        """Default: the donor's q/k/v/o land in ``q_proj``/``k_proj``/``v_proj``/``o_proj`` where those exist, and
        its q/k norms (Qwen3, OLMo 2, Gemma 3) in ``q_norm``/``k_norm``, applied to q and k before the mixer's
        feature map, decay or softmax (``projections.project_heads``)."""
        slots: dict[str, Slot | str] = {}
        for part in ("q", "k", "v", "o"):
            name = f"{part}_proj"
            slots[part] = Slot(name) if isinstance(getattr(self, name, None), nn.Linear) else (
                f"mixer {self.name!r} has no {name}")
        for name in ("q_norm", "k_norm"):
            slots[name] = Slot(name, f"applied to {name[0]} before RoPE, as in the donor") if isinstance(
                getattr(self, name, None), nn.Module) else f"mixer {self.name!r} has no {name}"
        return slots

    def _xatl_init(self, std: float) -> None:
        """Initialise parameters/buffers owned directly by this module (children are initialised separately)."""

    def extra_repr(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self.opts, f.name)!r}" for f in dataclasses.fields(self.opts))
        return f"layer={self.layer_idx}" + (f", {fields}" if fields else "")

    def _use_fla(self, x: torch.Tensor) -> bool:
        """Whether the chunked form runs fla's kernels on ``x``: never with kernels "torch"; with "auto" when x is on
        CUDA and fla imports; with "fla" always, refusing in one line where it cannot."""
        kernels = getattr(self.opts, "kernels", "torch")
        if kernels == "torch" or self.fla_path is None:
            return False
        if (fla_delta_usable if self.fla_path == "delta" else fla_usable)(x):     # CUDA inputs and fla imports
            return True
        if kernels == "auto":
            return False
        if not x.is_cuda:
            raise ConfigError(f"kernels='fla' runs flash-linear-attention's Triton kernels, which need CUDA inputs "
                              f"(got {x.device.type}); move the model to a GPU or use kernels='auto' or 'torch'")
        raise ConfigError("kernels='fla' needs flash-linear-attention: pip install flash-linear-attention (or use "
                          "kernels='auto' or 'torch')")

    def _form_for(self, T: int, state: State | None) -> str:
        """The form to run: recurrent for one-token steps with a state, else the configured form."""
        if T == 1 and state is not None:
            return "recurrent"
        return getattr(self.opts, "form", "chunked")


def split_heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(B, T, H * D) -> (B, H, T, D)"""
    B, T, _ = x.shape
    return x.view(B, T, -1, head_dim).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, H * D)"""
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def padding_mask(ctx: MixerContext, T: int) -> torch.Tensor | None:
    """(B, T) bool mask of the current tokens (False = padding), or None when nothing is padded."""
    mask = ctx.current_mask(T)
    if mask is None or bool(mask.all()):
        return None
    return mask[..., 0].bool()


def head_rms_norm(o: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-head RMS norm (RetNet/GLA "group norm"), computed in float32: o (..., D), weight (D,) -> (..., D)."""
    dtype = o.dtype
    h = o.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)

"""The vocabulary of donor adapters: roles, components, transforms, and the adapter record itself.

A donor adapter is *data*: a table ``{donor tensor template: role(s)}`` plus a function that reads the donor's
skeleton facts from its HF config. Templates use ``{}`` for the layer index (litgpt style).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

# What each role is, for the copy selection (``--copy``).
COMPONENTS = ("embed", "norms", "mlp", "lm_head", "o_proj", "qkv")
DEFAULT_COPY = ("embed", "norms", "mlp", "lm_head", "o_proj")   # the paper's default: all shared but Q/K/V

ROLE_COMPONENT = {
    "embed": "embed", "pos_embed": "embed",
    "attn_norm.weight": "norms", "attn_norm.bias": "norms", "mlp_norm.weight": "norms", "mlp_norm.bias": "norms",
    "final_norm.weight": "norms", "final_norm.bias": "norms",
    "attn_post_norm.weight": "norms", "mlp_post_norm.weight": "norms",
    "q.weight": "qkv", "q.bias": "qkv", "k.weight": "qkv", "k.bias": "qkv", "v.weight": "qkv", "v.bias": "qkv",
    "q_norm.weight": "qkv", "k_norm.weight": "qkv",     # the donor's q/k RMSNorm: travels with Q and K
    "o.weight": "o_proj", "o.bias": "o_proj",
    "mlp.gate.weight": "mlp", "mlp.gate.bias": "mlp", "mlp.up.weight": "mlp", "mlp.up.bias": "mlp",
    "mlp.down.weight": "mlp", "mlp.down.bias": "mlp",
    "lm_head.weight": "lm_head",
}

# Where each non-attention role lands in the student. q/k/v/o (and q/k norms) land wherever the layer's mixer says
# (``Mixer.transfer_slots``).
STUDENT_TARGET = {
    "embed": "model.embed_tokens.weight",
    "pos_embed": "model.embed_positions.weight",
    "attn_norm.weight": "model.layers.{}.attn_norm.weight", "attn_norm.bias": "model.layers.{}.attn_norm.bias",
    "mlp_norm.weight": "model.layers.{}.mlp_norm.weight", "mlp_norm.bias": "model.layers.{}.mlp_norm.bias",
    "attn_post_norm.weight": "model.layers.{}.attn_post_norm.weight",
    "mlp_post_norm.weight": "model.layers.{}.mlp_post_norm.weight",
    "mlp.gate.weight": "model.layers.{}.mlp.gate_proj.weight", "mlp.gate.bias": "model.layers.{}.mlp.gate_proj.bias",
    "mlp.up.weight": "model.layers.{}.mlp.up_proj.weight", "mlp.up.bias": "model.layers.{}.mlp.up_proj.bias",
    "mlp.down.weight": "model.layers.{}.mlp.down_proj.weight", "mlp.down.bias": "model.layers.{}.mlp.down_proj.bias",
    "final_norm.weight": "model.norm.weight", "final_norm.bias": "model.norm.bias",
    "lm_head.weight": "lm_head.weight",
}
ATTENTION_ROLES = {"q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias", "o.weight", "o.bias",
                   "q_norm.weight", "k_norm.weight"}


def slot_of(role: str) -> str:
    """The ``Mixer.transfer_slots`` key of an attention role: "q.weight" -> "q", "k_norm.weight" -> "k_norm"."""
    return role.split(".")[0]


@dataclass(frozen=True)
class Transform:
    """A bit-exact rearrangement of a donor tensor (a slice, a transpose): ``fn(tensor, donor_config)``."""

    name: str
    fn: Callable[[torch.Tensor, Any], torch.Tensor]

    def __call__(self, t: torch.Tensor, donor_config) -> torch.Tensor:
        return self.fn(t, donor_config)


IDENTITY = Transform("identity", lambda t, cfg: t)


@dataclass(frozen=True)
class Piece:
    """One role carried by (part of) a donor tensor."""

    role: str
    transform: Transform = IDENTITY


@dataclass(frozen=True)
class DonorAdapter:
    """How to read one donor family.

    weights: donor tensor template -> role, or tuple of Pieces for fused tensors.
    skeleton: donor HF config -> XATLConfig skeleton kwargs (raises UnsupportedDonorError for what it cannot mirror).
    unused: donor tensor-name prefix -> why a student never takes such tensors (e.g. a multimodal donor's vision
        tower); the transfer report lists them as unused with that reason.
    """

    model_types: tuple[str, ...]
    weights: dict[str, str | tuple[Piece, ...]]
    skeleton: Callable[[Any], dict]
    unused: dict[str, str] = field(default_factory=dict)
    _patterns: list[tuple[re.Pattern, tuple[Piece, ...]]] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        for template, value in self.weights.items():
            pieces = (Piece(value),) if isinstance(value, str) else tuple(value)
            for p in pieces:
                if p.role not in ROLE_COMPONENT:
                    raise ValueError(f"adapter table names an unknown role {p.role!r} for {template!r}")
            rx = re.compile("^" + re.escape(template).replace(r"\{\}", r"(\d+)") + "$")
            self._patterns.append((rx, pieces))

    def match(self, name: str) -> tuple[int | None, tuple[Piece, ...]] | None:
        """(layer index or None, pieces) for a donor tensor name, or None when the table has no entry."""
        for rx, pieces in self._patterns:
            m = rx.match(name)
            if m:
                return (int(m.group(1)) if m.groups() else None), pieces
        return None

    def unused_reason(self, name: str) -> str | None:
        """Why the donor tensor ``name`` is never taken (its prefix is in ``unused``), or None."""
        return next((why for prefix, why in self.unused.items() if name.startswith(prefix)), None)


def rows_split(parts: int, index: int, name: str) -> Transform:
    """Rows [index * n/parts, (index+1) * n/parts) of a (n, ...) tensor: GPT-2's fused q|k|v after transposing."""
    def fn(t, cfg):
        n = t.shape[0] // parts
        return t[index * n:(index + 1) * n]
    return Transform(name, fn)


def transposed(inner: Transform | None = None, name: str = "transpose") -> Transform:
    """Conv1D (in, out) weights -> Linear (out, in), then ``inner``."""
    def fn(t, cfg):
        t = t.t() if t.dim() == 2 else t
        return inner(t, cfg) if inner is not None else t
    return Transform(name, fn)

"""Feature maps phi for the ``linear`` mixer: (B, H, T, D) -> (B, H, T, F), positive (or non-negative) features.

Fixed maps: ``elu`` (elu(x) + 1, Katharopoulos et al. 2020) and ``relu``. Learned maps (their weights are mixer
parameters, freshly initialised; the transfer report lists them as such):

* ``t2r``: relu(x W_h + b_h), a one-layer MLP per head (T2R, Kasai et al. 2021).
* ``hedgehog``: [softmax(x W_h), softmax(-x W_h)] over the F features, per head (Hedgehog, Zhang et al. 2024):
  a spiky, monotonic map trained to mimic softmax attention; its output has 2F features.

Learned weights start as the identity (``torch.eye(D, F)``), so a fresh ``t2r`` map is ``relu`` and a fresh
``hedgehog`` map is softmax over the head's own channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from .base import LCIOptions


class FeatureMap(nn.Module):
    """Base: ``forward(x (B, H, T, D)) -> (B, H, T, out_dim)``."""

    def __init__(self, num_heads: int, head_dim: int, feature_dim: int | None = None):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.feature_dim = feature_dim or head_dim
        self.out_dim = head_dim


class EluMap(FeatureMap):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x) + 1.0


class ReluMap(FeatureMap):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class _LearnedMap(FeatureMap):
    """A per-head linear map W_h (D, F), initialised to the (rectangular) identity."""

    init_notes = {"weight": "identity (torch.eye(head_dim, feature_dim)) per head", "bias": "zeros"}

    def __init__(self, num_heads: int, head_dim: int, feature_dim: int | None = None):
        super().__init__(num_heads, head_dim, feature_dim)
        self.weight = nn.Parameter(torch.empty(num_heads, head_dim, self.feature_dim))

    def _xatl_init(self, std: float) -> None:
        init.copy_(self.weight, torch.eye(self.head_dim, self.feature_dim).expand_as(self.weight))
        if getattr(self, "bias", None) is not None:
            init.zeros_(self.bias)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, H, T, F)"""
        return torch.einsum("bhtd,hdf->bhtf", x, self.weight.to(x.dtype))


class T2RMap(_LearnedMap):
    def __init__(self, num_heads: int, head_dim: int, feature_dim: int | None = None):
        super().__init__(num_heads, head_dim, feature_dim)
        self.bias = nn.Parameter(torch.empty(num_heads, 1, self.feature_dim))
        self.out_dim = self.feature_dim
        self._xatl_init(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.project(x) + self.bias.to(x.dtype))


class HedgehogMap(_LearnedMap):
    def __init__(self, num_heads: int, head_dim: int, feature_dim: int | None = None):
        super().__init__(num_heads, head_dim, feature_dim)
        self.out_dim = 2 * self.feature_dim
        self._xatl_init(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(x).float()
        return torch.cat([torch.softmax(z, -1), torch.softmax(-z, -1)], -1).to(x.dtype)


FEATURE_MAPS: dict[str, type[FeatureMap]] = {"elu": EluMap, "relu": ReluMap, "t2r": T2RMap, "hedgehog": HedgehogMap}


@dataclass
class FeatureMapOptions(LCIOptions):
    """Options of the mixers with a linear-attention part (``linear``, ``lolcats``): its feature maps."""

    feature_map: str = "elu"
    """Feature map phi applied to queries and keys: elu (elu + 1), relu, t2r (learned) or hedgehog (learned)."""
    feature_dim: int | None = None
    """Features per head of the learned maps (hedgehog outputs twice as many); None = head_dim."""

    def validate(self) -> None:
        super().validate()
        if self.feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map must be one of {', '.join(sorted(FEATURE_MAPS))}; got {self.feature_map!r}")
        if self.feature_dim is not None and self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")

    def build_maps(self, num_heads: int, head_dim: int) -> tuple[FeatureMap, FeatureMap]:
        """(query map, key map): one map each, per head."""
        fmap = FEATURE_MAPS[self.feature_map]
        return fmap(num_heads, head_dim, self.feature_dim), fmap(num_heads, head_dim, self.feature_dim)

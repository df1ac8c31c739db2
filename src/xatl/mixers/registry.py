"""The mixer registry: one line per mixer. Unknown names are refused with the list of valid ones."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError, choices_message
from .base import Mixer
from .deltanet import DeltaNet, GatedDeltaNet
from .gla import GatedLinearAttention
from .linear import LinearAttention
from .lolcats import LolcatsAttention
from .mamba import Mamba
from .mamba2 import Mamba2
from .retention import Retention
from .softmax import SoftmaxAttention
from .swa import SlidingWindowAttention

MIXERS: dict[str, type[Mixer]] = {
    cls.name: cls
    for cls in (
        SoftmaxAttention,
        LinearAttention,
        Retention,
        GatedLinearAttention,
        Mamba,
        Mamba2,
        SlidingWindowAttention,
        LolcatsAttention,
        DeltaNet,
        GatedDeltaNet,
    )
}


def get_mixer_class(name: str) -> type[Mixer]:
    if name not in MIXERS:
        raise ConfigError(choices_message("mixer", name, MIXERS))
    return MIXERS[name]


def keeps_donor_attention(name: str) -> bool:
    """Whether a layer whose mixer is ``name`` (an entry of ``config.layer_mixers``) keeps the donor's attention
    (`Mixer.keeps_donor_attention`)."""
    return get_mixer_class(name).keeps_donor_attention


def is_recurrent(name: str) -> bool:
    """Whether mixer ``name`` keeps a fixed-size state (linear cost) rather than a growing KV cache
    (`Mixer.recurrent`)."""
    return get_mixer_class(name).recurrent


def mixer_option_names(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(get_mixer_class(name).Options)]


def validate_mixer_options(name: str, options: dict[str, Any]) -> None:
    """Raise ConfigError for an unknown option name or a bad value of mixer ``name``."""
    cls = get_mixer_class(name)
    valid = mixer_option_names(name)
    for key in options:
        if key not in valid:
            listing = ", ".join(valid) if valid else "(none)"
            raise ConfigError(f"unknown option {key!r} for mixer {name!r}; valid options: {listing}")
    try:
        cls.Options(**options).validate()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad option for mixer {name!r}: {e}") from None


def build_mixer(config, layer_idx: int) -> Mixer:
    """The mixer of layer ``layer_idx`` of ``config`` (an XATLConfig)."""
    return get_mixer_class(config.layer_mixers[layer_idx])(config, layer_idx, **config.options_for(layer_idx))

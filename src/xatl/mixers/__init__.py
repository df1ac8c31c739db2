"""Token mixers: one module per mixer, each with parallel/chunked and recurrent forms (see ``base.Mixer``)."""

from .base import Mixer, MixerContext, Slot, State
from .registry import MIXERS, build_mixer, get_mixer_class, validate_mixer_options

__all__ = ["MIXERS", "Mixer", "MixerContext", "Slot", "State", "build_mixer", "get_mixer_class",
           "validate_mixer_options"]

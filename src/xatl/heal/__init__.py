"""Healing a real donor: attention transfer, then distillation with LoRA, within a budget (``xatl heal``)."""

from ..utils.lazy import lazy_exports

_EXPORTS = {"Budget": "budget", "HealConfig": "config", "HealResult": "run", "heal": "run"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

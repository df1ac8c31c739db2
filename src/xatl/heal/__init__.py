"""Healing a real donor: attention transfer, then distillation with LoRA, within a budget (``xatl heal``)."""

from .budget import Budget
from .config import HealConfig
from .run import HealResult, heal

__all__ = ["Budget", "HealConfig", "HealResult", "heal"]

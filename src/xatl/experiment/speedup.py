"""The speedup of XATL over training from scratch, computed on validation-loss curves.

Rule (stated in every report): the *target* is the scratch run's final validation loss (its last evaluation).
For a curve of evaluation points (step, loss), the steps needed to reach the target are those of the first point
at or below it, linearly interpolated with the point before it (the loss is taken to fall linearly between two
evaluations). ``speedup = steps(scratch) / steps(xatl)``.

* A run whose first evaluation is already at or below the target reached it at or before that step: the speedup
  is a lower bound (``>= x``); at step 0 it is unbounded.
* A run that never reaches the target has no speedup ("not reached"), never a number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

RULE = ("speedup = steps the scratch student needs to reach its own final validation loss / steps the XATL "
        "student needs to reach that same loss; steps are those of the first evaluation at or below the target, "
        "linearly interpolated with the evaluation before it. '>=' marks a run already below the target at its "
        "first evaluation (a lower bound); 'not reached' a run that never gets there.")

Curve = Sequence[tuple[float, float]]
"""Evaluation points (step, validation loss), in increasing step order."""


@dataclass
class Reach:
    """When a curve first reaches a target loss."""

    steps: float | None
    """Interpolated steps (None: never reached)."""
    bound: bool = False
    """True when the first evaluation was already at or below the target (``steps`` is an upper bound)."""


@dataclass
class Speedup:
    target: float | None
    """The scratch run's final validation loss."""
    scratch_steps: float | None
    xatl_steps: float | None
    value: float | None
    """steps(scratch) / steps(xatl); None when XATL never reaches the target; inf when it starts below it."""
    lower_bound: bool = False
    """``value`` is a lower bound (XATL was already below the target at its first evaluation)."""

    @property
    def reached(self) -> bool:
        return self.value is not None

    def text(self) -> str:
        if self.target is None:
            return "no curve"
        if self.value is None:
            return "not reached"
        if math.isinf(self.value):
            return "inf (below target at step 0)"
        return f"{'>= ' if self.lower_bound else ''}{self.value:.2f}x"

    def meets(self, target: float) -> bool:
        """True when the speedup is known to be at least ``target``."""
        return self.value is not None and self.value >= target

    def to_dict(self) -> dict:
        return {"target_loss": self.target, "scratch_steps": self.scratch_steps, "xatl_steps": self.xatl_steps,
                "speedup": None if self.value is None or math.isinf(self.value) else self.value,
                "unbounded": self.value is not None and math.isinf(self.value), "lower_bound": self.lower_bound,
                "reached": self.reached, "text": self.text()}


def clean(curve: Curve) -> list[tuple[float, float]]:
    """Finite points sorted by step (a NaN evaluation is dropped; a repeated step keeps its last value)."""
    by_step = {float(s): float(v) for s, v in curve if v is not None and math.isfinite(v)}
    return sorted(by_step.items())


def steps_to_reach(curve: Curve, target: float) -> Reach:
    """When ``curve`` first gets to ``target`` or below (interpolated between evaluations)."""
    points = clean(curve)
    for i, (step, loss) in enumerate(points):
        if loss <= target:
            if i == 0:
                return Reach(step, bound=True)
            s0, l0 = points[i - 1]
            frac = (l0 - target) / (l0 - loss) if l0 != loss else 1.0
            return Reach(s0 + frac * (step - s0))
    return Reach(None)


def speedup(scratch: Curve, xatl: Curve) -> Speedup:
    """The speedup of the ``xatl`` curve over the ``scratch`` curve (see the module docstring for the rule)."""
    points = clean(scratch)
    if not points or not clean(xatl):
        return Speedup(None, None, None, None)
    target = points[-1][1]
    base = steps_to_reach(points, target).steps
    reach = steps_to_reach(xatl, target)
    if reach.steps is None:
        return Speedup(target, base, None, None)
    if reach.steps <= 0:
        return Speedup(target, base, 0.0, math.inf, lower_bound=True)
    return Speedup(target, base, reach.steps, base / reach.steps, lower_bound=reach.bound)


def final_loss(curve: Curve) -> float | None:
    points = clean(curve)
    return points[-1][1] if points else None


def spread(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation or None, count) of the finite values."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None), len(xs)

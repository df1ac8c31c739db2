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
    sp = crossing(points, xatl, target=points[-1][1] if points else None)
    if sp.value is not None and math.isinf(sp.value):
        sp.lower_bound = True                 # below the target at step 0: the rule calls that a bound
    return sp


def final_loss(curve: Curve) -> float | None:
    points = clean(curve)
    return points[-1][1] if points else None


def spread(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation or None, count) of the finite values."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None), len(xs)


# ------------------------------------------------------------------------------------- measured where curves cross
CROSSING_RULE = ("speedup at loss L = steps the scratch student needs to first reach L / steps the XATL student "
                 "needs to first reach L (each interpolated between its evaluations); the headline takes L = the "
                 "XATL student's final validation loss, so the scratch run (trained several times longer) must "
                 "actually cross it: 'not reached' means it never did, and no number is given.")


def crossing(scratch: Curve, xatl: Curve, target: float | None = None) -> Speedup:
    """The speedup at ``target`` (None: the XATL curve's final loss) where both curves are measured to cross it:
    ``value`` is None when the scratch curve never reaches the target (no speedup is claimed) and inf when the
    XATL curve starts at or below it at step 0. ``lower_bound`` is set only when XATL's first evaluation is after
    step 0 and already below the target (the resolution of the evaluations limits the number)."""
    x = clean(xatl)
    if not x or not clean(scratch):
        return Speedup(None, None, None, None)
    target = x[-1][1] if target is None else target
    base = steps_to_reach(scratch, target)
    reach = steps_to_reach(x, target)
    if base.steps is None or reach.steps is None:
        return Speedup(target, base.steps, reach.steps, None)
    if reach.steps <= 0:
        return Speedup(target, base.steps, 0.0, math.inf)
    return Speedup(target, base.steps, reach.steps, base.steps / reach.steps, lower_bound=reach.bound)


def speedup_curve(scratch: Curve, xatl: Curve) -> list[dict]:
    """The speedup over a range of target losses: one point per XATL evaluation that sets a new low (step 0
    included), ``{"step", "target_loss", "xatl_steps", "scratch_steps", "speedup", "unbounded", "reached"}``.
    "Scratch needs S steps to reach the loss XATL has at step k": speedup = S / k (first crossings, interpolated);
    None where scratch never gets that low, unbounded at step 0."""
    out, low = [], math.inf
    for step, loss in clean(xatl):
        if loss >= low:
            continue
        low = loss
        sp = crossing(scratch, xatl, target=loss)
        out.append({"step": step, "target_loss": loss, "xatl_steps": sp.xatl_steps, "scratch_steps": sp.scratch_steps,
                    "speedup": None if sp.value is None or math.isinf(sp.value) else sp.value,
                    "unbounded": sp.value is not None and math.isinf(sp.value), "reached": sp.reached})
    return out


def value_at(points: Sequence[tuple[float, float]], step: float | None) -> float | None:
    """``points`` (step, value) linearly interpolated at ``step`` (None outside their range or for None)."""
    pts = clean(points)
    if step is None or not pts or step < pts[0][0] or step > pts[-1][0]:
        return None
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        if s0 <= step <= s1:
            return v0 if s1 == s0 else v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return pts[-1][1]


def range_verdict(values: Sequence[float | None], target: float) -> tuple[bool | None, str]:
    """Is the speedup at least ``target``, judged on its spread over seeds? True when every seed's value is at or
    above it, False when every seed's is below, None ("not established") when the seeds straddle it, when a seed
    has no value, or with fewer than two seeds."""
    xs = [v for v in values if v is not None]
    if len(xs) != len(values) or not xs:
        return None, "a seed never crossed: not established"
    lo, hi = min(xs), max(xs)
    if len(xs) < 2:
        return None, f"{lo:.2f}x from one seed: no spread, not established"
    if lo >= target:
        return True, f"every seed at or above {target:g}x (range {lo:.2f}-{hi:.2f}x)"
    if hi < target:
        return False, f"every seed below {target:g}x (range {lo:.2f}-{hi:.2f}x)"
    return None, f"seeds straddle {target:g}x (range {lo:.2f}-{hi:.2f}x): not established"

"""Schedules as pure functions and small state machines: the learning rate, and when copied weights unfreeze.

Unfreeze schedules (the paper's recipe keeps the copied weights frozen first, then releases them):

* ``never``: copied weights stay frozen for the whole run.
* ``step:N``: frozen for LM steps 1..N, trained from step N + 1 on (``step:0``: never frozen).
* ``lit:threshold=T,patience=P[,window=W]``: the paper's *Loss Improvement Threshold*, as its code
  (github.com/syncdoth/RetNet-XATL, ``loss_from_wandb.ipynb``, ``get_step_to_unfreeze``) defines it. The training
  losses are averaged over consecutive windows of W LM steps; after each window k >= 2 the relative improvement
  ``(L[k-1] - L[k]) / L[k-1]`` is compared with T, and every window below it uses up one unit of patience,
  *cumulatively* (a good window in between does not reset the count). When P windows have stalled, the copied
  weights unfreeze right after the P-th (from the next step on). W defaults to the paper's fraction of the run:
  5,000-step windows over its 145,000-step schedule, i.e. ``max_steps * 5000 / 145000`` (1/29).
* ``lit-consecutive:threshold=T,patience=P[,window=W]``: xatl's earlier variant, kept by name: patience counts
  stalled windows *in a row* (a good window resets it), and W defaults to 1/20 of the LM steps. With it the
  trainer's defaults for the released weights are the variant's too: a peak of ``lr / 10`` and the LM warm-up as
  their ramp (:class:`xatl.train.TrainConfig`), where the paper ramps them to the main schedule's learning rate
  over 2,000 of its 145,000 steps.

Steps are counted from 1 (step s is the s-th optimizer update of the LM stage).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ..errors import ConfigError

SCHEDULE_FORMS = "never | step:N | lit:threshold=T,patience=P[,window=W] | lit-consecutive:threshold=T,patience=P[,window=W]"
LIT_KINDS = ("lit", "lit-consecutive")

# the paper's schedule (RetNet-XATL launch scripts): windows of 5k steps and a 2k-step re-warm over 145k steps
PAPER_STEPS, PAPER_WINDOW, PAPER_REWARM = 145_000, 5_000, 2_000


def paper_fraction(steps: int, part: int) -> int:
    """``part`` of the paper's 145k-step schedule, scaled to a run of ``steps`` (at least 1)."""
    return max(1, round(steps * part / PAPER_STEPS))


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at ``step`` (1-based): linear warm-up over ``warmup`` steps, then a
    cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step <= warmup:
        return step / warmup
    return cosine_factor(step, warmup, total, min_ratio)


def cosine_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """The cosine part alone: 1 at ``warmup``, ``min_ratio`` at ``total`` (flat outside)."""
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def copied_lr_factor(step: int, unfrozen_after: int | None, warmup: int, main) -> float:
    """Multiplier of the copied weights' peak learning rate at ``step``: 0 while frozen; after unfreezing at
    ``unfrozen_after``, a linear ramp over ``warmup`` steps up to the main schedule's value at the end of the ramp,
    then the main schedule ``main(step)`` itself. This is the paper's re-warm of newly unfrozen weights
    (``scripts/train.py``: the unfrozen group's lr climbs from 0 to the main lr at ``unfreeze + warmup``)."""
    if unfrozen_after is None or step <= unfrozen_after:
        return 0.0
    since = step - unfrozen_after
    if warmup > 0 and since < warmup:
        return since / warmup * main(unfrozen_after + warmup)
    return main(step)


@dataclass(frozen=True)
class UnfreezeSpec:
    """A parsed unfreeze schedule (see the module docstring)."""

    kind: str
    """``never``, ``step``, ``lit`` (the paper's rule) or ``lit-consecutive`` (the earlier xatl variant)."""
    step: int | None = None
    """``step:N``: the last frozen LM step."""
    threshold: float | None = None
    """``lit``: relative improvement of the windowed loss below which a window counts as stalled."""
    patience: int | None = None
    """``lit``: stalled windows that trigger the unfreezing (counted cumulatively; in a row for
    ``lit-consecutive``)."""
    window: int | None = None
    """``lit``: steps per window (None: the paper's 5k of 145k steps, 1/29 of the LM steps; 1/20 for
    ``lit-consecutive``)."""

    @property
    def is_lit(self) -> bool:
        return self.kind in LIT_KINDS

    def __str__(self) -> str:
        if self.kind == "step":
            return f"step:{self.step}"
        if self.is_lit:
            w = f",window={self.window}" if self.window is not None else ""
            return f"{self.kind}:threshold={self.threshold},patience={self.patience}{w}"
        return "never"


def parse_unfreeze(text: str | UnfreezeSpec) -> UnfreezeSpec:
    """Parse ``never``, ``step:N``, ``lit:threshold=T,patience=P[,window=W]`` or ``lit-consecutive:...``;
    ConfigError otherwise."""
    if isinstance(text, UnfreezeSpec):
        return text
    return _parse_text(str(text))


@functools.lru_cache(maxsize=64)
def _parse_text(text: str) -> UnfreezeSpec:
    """The parse of one schedule string, once (the spec is frozen; the trainer asks for it every step)."""
    s = text.strip().lower()
    bad = f"unknown unfreeze schedule {text!r}; use {SCHEDULE_FORMS}"
    if s == "never":
        return UnfreezeSpec("never")
    kind, _, rest = s.partition(":")
    if kind == "step":
        if not rest.strip().isdigit():
            raise ConfigError(f"bad unfreeze schedule {text!r}: step:N needs a whole number N >= 0, e.g. step:100")
        return UnfreezeSpec("step", step=int(rest))
    if kind not in LIT_KINDS:
        raise ConfigError(bad)
    opts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in ("threshold", "patience", "window"):
            raise ConfigError(f"bad unfreeze schedule {text!r}: {kind} takes threshold=T,patience=P[,window=W]")
        opts[key] = value
    try:
        threshold = float(opts["threshold"])
        patience = int(opts.get("patience", "1"))
        window = int(opts["window"]) if "window" in opts else None
    except KeyError:
        raise ConfigError(f"bad unfreeze schedule {text!r}: lit needs threshold=T, e.g. "
                          "lit:threshold=0.01,patience=1") from None
    except ValueError:
        raise ConfigError(f"bad unfreeze schedule {text!r}: threshold is a number, patience and window are "
                          "whole numbers") from None
    if not threshold > 0 or patience < 1 or (window is not None and window < 1):
        raise ConfigError(f"bad unfreeze schedule {text!r}: need threshold > 0, patience >= 1, window >= 1")
    return UnfreezeSpec(kind, threshold=threshold, patience=patience, window=window)


@dataclass
class LITRule:
    """The Loss Improvement Threshold rule as a state machine over per-step losses.

    ``update(loss)`` takes one step's training loss and returns True exactly once: at the step that closes the
    P-th stalled window (counted cumulatively, as in the paper's code; ``consecutive=True``: the P-th in a row).
    State is plain data (``state_dict``), so a resumed run fires at the same step.
    """

    threshold: float
    patience: int
    window: int
    consecutive: bool = False
    """Count only stalled windows in a row (xatl's earlier variant); False: cumulatively (the paper)."""
    window_sum: float = 0.0
    window_count: int = 0
    previous: float | None = None
    """Mean loss of the last complete window."""
    stalled: int = 0
    """Stalled windows so far (in a row, when ``consecutive``)."""
    fired: bool = False
    history: list[dict] = field(default_factory=list)
    """One record per complete window: mean loss and relative improvement (for reports)."""

    def update(self, loss: float) -> bool:
        if self.fired:
            return False
        self.window_sum += float(loss)
        self.window_count += 1
        if self.window_count < self.window:
            return False
        mean = self.window_sum / self.window_count
        self.window_sum, self.window_count = 0.0, 0
        improvement = None
        if self.previous is not None:
            improvement = (self.previous - mean) / abs(self.previous) if self.previous else 0.0
            if improvement < self.threshold:
                self.stalled += 1
            elif self.consecutive:
                self.stalled = 0
        self.history.append({"window_loss": mean, "improvement": improvement})
        self.previous = mean
        if self.stalled >= self.patience:
            self.fired = True
        return self.fired

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("window_sum", "window_count", "previous", "stalled", "fired",
                                              "history")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class UnfreezeSchedule:
    """Decides, after each LM step, whether the copied weights unfreeze now.

    ``observe(step, loss) -> bool`` is True once, at the last frozen step. ``initially_frozen`` is False for
    ``step:0``. The schedule is only consulted while the weights are frozen.
    """

    def __init__(self, spec: UnfreezeSpec | str, max_steps: int):
        self.spec = parse_unfreeze(spec)
        self.lit = None
        if self.spec.is_lit:
            consecutive = self.spec.kind == "lit-consecutive"
            window = self.spec.window or (max(1, max_steps // 20) if consecutive
                                          else paper_fraction(max_steps, PAPER_WINDOW))
            self.lit = LITRule(self.spec.threshold, self.spec.patience, window, consecutive)

    @property
    def initially_frozen(self) -> bool:
        return not (self.spec.kind == "step" and self.spec.step == 0)

    def observe(self, step: int, loss: float) -> bool:
        if self.spec.kind == "step":
            return step >= self.spec.step
        if self.lit is not None:
            return self.lit.update(loss)
        return False

    def state_dict(self) -> dict:
        return {"spec": str(self.spec), "lit": self.lit.state_dict() if self.lit is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.lit is not None and state.get("lit") is not None:
            self.lit.load_state_dict(state["lit"])

"""Schedules as pure functions and small state machines: the learning rate, and when copied weights unfreeze.

Unfreeze schedules (the paper's recipe keeps the copied weights frozen first, then releases them):

* ``never``: copied weights stay frozen for the whole run.
* ``step:N``: frozen for LM steps 1..N, trained from step N + 1 on (``step:0``: never frozen).
* ``lit:threshold=T,patience=P[,window=W]``: the paper's *Loss Improvement Threshold*. The training losses are
  averaged over consecutive windows of W LM steps (the smoothed loss); after each window k >= 2 the relative
  improvement ``(L[k-1] - L[k]) / L[k-1]`` is compared with T. When it is below T for P windows *in a row*, the
  copied weights unfreeze right after that window (from the next step on). W defaults to 1/20 of the LM steps
  (the paper: 5k-step windows over ~100k steps).

Steps are counted from 1 (step s is the s-th optimizer update of the LM stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

SCHEDULE_FORMS = "never | step:N | lit:threshold=T,patience=P[,window=W]"


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


def copied_lr_factor(step: int, unfrozen_after: int | None, warmup: int, cosine: float) -> float:
    """Multiplier of the copied weights' learning rate at ``step``: 0 while frozen; after unfreezing at
    ``unfrozen_after`` a linear warm-up of its own over ``warmup`` steps, times the main cosine factor."""
    if unfrozen_after is None or step <= unfrozen_after:
        return 0.0
    since = step - unfrozen_after
    warm = min(1.0, since / warmup) if warmup > 0 else 1.0
    return warm * cosine


@dataclass(frozen=True)
class UnfreezeSpec:
    """A parsed unfreeze schedule (see the module docstring)."""

    kind: str
    """``never``, ``step`` or ``lit``."""
    step: int | None = None
    """``step:N``: the last frozen LM step."""
    threshold: float | None = None
    """``lit``: relative improvement of the windowed loss below which a window counts as stalled."""
    patience: int | None = None
    """``lit``: stalled windows in a row that trigger the unfreezing."""
    window: int | None = None
    """``lit``: steps per window (None: 1/20 of the LM steps)."""

    def __str__(self) -> str:
        if self.kind == "step":
            return f"step:{self.step}"
        if self.kind == "lit":
            w = f",window={self.window}" if self.window is not None else ""
            return f"lit:threshold={self.threshold},patience={self.patience}{w}"
        return "never"


def parse_unfreeze(text: str | UnfreezeSpec) -> UnfreezeSpec:
    """Parse ``never``, ``step:N`` or ``lit:threshold=T,patience=P[,window=W]``; ConfigError otherwise."""
    if isinstance(text, UnfreezeSpec):
        return text
    s = str(text).strip().lower()
    bad = f"unknown unfreeze schedule {text!r}; use {SCHEDULE_FORMS}"
    if s == "never":
        return UnfreezeSpec("never")
    kind, _, rest = s.partition(":")
    if kind == "step":
        if not rest.strip().isdigit():
            raise ConfigError(f"bad unfreeze schedule {text!r}: step:N needs a whole number N >= 0, e.g. step:100")
        return UnfreezeSpec("step", step=int(rest))
    if kind != "lit":
        raise ConfigError(bad)
    opts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in ("threshold", "patience", "window"):
            raise ConfigError(f"bad unfreeze schedule {text!r}: lit takes threshold=T,patience=P[,window=W]")
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
    return UnfreezeSpec("lit", threshold=threshold, patience=patience, window=window)


@dataclass
class LITRule:
    """The Loss Improvement Threshold rule as a state machine over per-step losses.

    ``update(loss)`` takes one step's training loss and returns True exactly once: at the step that closes the
    P-th stalled window in a row. State is plain data (``state_dict``), so a resumed run fires at the same step.
    """

    threshold: float
    patience: int
    window: int
    window_sum: float = 0.0
    window_count: int = 0
    previous: float | None = None
    """Mean loss of the last complete window."""
    stalled: int = 0
    """Stalled windows in a row so far."""
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
            self.stalled = self.stalled + 1 if improvement < self.threshold else 0
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
        if self.spec.kind == "lit":
            window = self.spec.window or max(1, max_steps // 20)
            self.lit = LITRule(self.spec.threshold, self.spec.patience, window)

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

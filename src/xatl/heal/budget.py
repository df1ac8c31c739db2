"""Healing budgets: ``15m`` (wall-clock), ``2000steps`` or ``1.5Mtok`` (tokens), parsed into a :class:`Budget`.

A wall-clock budget is turned into steps once, before training, from a measured step time of each stage on the
run's own batch shape (see ``xatl.heal.run.calibrate``): the learning-rate schedules need a known length, and a
fixed step count keeps resume exact. The calibration is recorded in ``OUT/heal.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

_UNITS = {"s": ("seconds", 1.0), "sec": ("seconds", 1.0), "m": ("seconds", 60.0), "min": ("seconds", 60.0),
          "h": ("seconds", 3600.0), "step": ("steps", 1.0), "steps": ("steps", 1.0), "tok": ("tokens", 1.0),
          "tokens": ("tokens", 1.0)}
_MAGNITUDE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMG]?)\s*(tokens|tok|steps|step|sec|min|s|m|h)\s*$")
EXAMPLES = "15m, 90s, 1h, 400steps, 1.5Mtok"
LIMITS = {"seconds": 30 * 86400.0, "steps": 1e9, "tokens": 1e13}
"""The largest budget of each kind accepted: 30 days, a billion steps, 10T tokens (a 28-digit budget is a typo)."""


@dataclass(frozen=True)
class Budget:
    """How much healing to do, in one unit: ``seconds`` of wall-clock, optimizer ``steps`` or training ``tokens``."""

    kind: str
    amount: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``15m`` -> Budget("seconds", 900); ``400steps``; ``1.5Mtok``. ConfigError naming the accepted forms."""
        m = _PATTERN.match(str(text))
        if not m or (m.group(2) and _UNITS[m.group(3)][0] == "seconds"):
            raise ConfigError(f"cannot read budget {text!r}; give a number and a unit, e.g. {EXAMPLES} "
                              "(s/m/h: wall-clock, steps, tok: tokens; k/M before steps or tok)")
        kind, scale = _UNITS[m.group(3)]
        amount = float(m.group(1)) * scale * _MAGNITUDE[m.group(2).lower()]
        if amount <= 0:
            raise ConfigError(f"budget {text!r} must be positive")
        if amount > LIMITS[kind]:
            raise ConfigError(f"budget {text!r} is beyond any healing run (at most {LIMITS[kind]:,.0f} {kind}); give a "
                              f"smaller one, e.g. {EXAMPLES}")
        return cls(kind, amount)

    def __str__(self) -> str:
        if self.kind == "seconds":
            return f"{self.amount / 60:g} min"
        return f"{self.amount:,.0f} {self.kind}"

    def split(self, align_fraction: float, tokens_per_step: int, step_seconds: tuple[float, float] | None = None
              ) -> tuple[int, int]:
        """(attention-transfer steps, end-to-end steps): ``align_fraction`` of the budget to the first stage.

        ``tokens_per_step``: global batch x block size; ``step_seconds``: measured (align, end-to-end) step times,
        needed for a wall-clock budget. Each stage gets at least one step where its share is positive.
        """
        if self.kind == "steps":
            total = self.amount
            per = (1.0, 1.0)
        elif self.kind == "tokens":
            total = self.amount
            per = (float(tokens_per_step), float(tokens_per_step))
        else:
            if step_seconds is None:
                raise ConfigError("a wall-clock budget needs measured step times (calibration)")
            total = self.amount
            per = step_seconds
        a = int(round(total * align_fraction / per[0])) if align_fraction > 0 else 0
        b = int(round(total * (1 - align_fraction) / per[1])) if align_fraction < 1 else 0
        if align_fraction > 0:
            a = max(a, 1)
        if align_fraction < 1:
            b = max(b, 1)
        return a, b

"""Healing budgets: the accepted forms, the refused ones, and how a budget is split between the two stages."""

from __future__ import annotations

import pytest

from xatl.errors import ConfigError
from xatl.heal import Budget


@pytest.mark.parametrize("text, kind, amount", [
    ("15m", "seconds", 900), ("90s", "seconds", 90), ("1.5h", "seconds", 5400), ("2 min", "seconds", 120),
    ("400steps", "steps", 400), ("1step", "steps", 1), ("2k steps", "steps", 2000), ("1.5Mtok", "tokens", 1.5e6),
    ("300ktokens", "tokens", 300_000),
])
def test_budget_forms(text, kind, amount):
    b = Budget.parse(text)
    assert (b.kind, b.amount) == (kind, amount)


@pytest.mark.parametrize("text", ["15", "fast", "10kg", "0steps", "2km", "-3m", "", "1" + "0" * 27 + "tok",
                                  "2000000000steps", "1000h"])
def test_bad_budgets_are_refused_in_one_line(text):
    with pytest.raises(ConfigError, match=r"(cannot read budget .* e\.g\. 15m, 90s|must be positive|is beyond any "
                       r"healing run \(at most)") as info:
        Budget.parse(text)
    assert "\n" not in str(info.value)


def test_split_by_steps_tokens_and_seconds():
    assert Budget.parse("100steps").split(0.5, 1024) == (50, 50)
    assert Budget.parse("100steps").split(0.0, 1024) == (0, 100)
    assert Budget.parse("10ktok").split(0.5, 1000) == (5, 5)
    assert Budget.parse("1tok").split(0.5, 1000) == (1, 1)                # each stage gets at least one step
    assert Budget.parse("100s").split(0.5, 1000, (5.0, 25.0)) == (10, 2)   # measured step times
    with pytest.raises(ConfigError, match="measured step times"):
        Budget.parse("100s").split(0.5, 1000)


def test_checkpoints_fall_on_validated_steps():
    from xatl.heal.run import save_every

    assert save_every(41, 10) == 20          # was 11: an extra validation at step 11, outside the plan
    assert save_every(8, 4) == 12 and save_every(8, 0) == 10
    for total, every in ((41, 10), (100, 7), (30, 3)):
        assert save_every(total, every) % every == 0

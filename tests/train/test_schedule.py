"""The schedules as pure functions: parsing, the LIT rule on scripted losses, learning-rate shapes."""

from __future__ import annotations

import math

import pytest

from xatl.errors import ConfigError
from xatl.train import LITRule, UnfreezeSchedule, lr_factor, parse_unfreeze
from xatl.train.schedule import copied_lr_factor


def test_parse_forms():
    assert parse_unfreeze("never").kind == "never"
    s = parse_unfreeze("step:100")
    assert (s.kind, s.step) == ("step", 100)
    s = parse_unfreeze("lit:threshold=0.005,patience=2,window=50")
    assert (s.kind, s.threshold, s.patience, s.window) == ("lit", 0.005, 2, 50)
    assert str(parse_unfreeze(" LIT:threshold=0.01 ")) == "lit:threshold=0.01,patience=1"


@pytest.mark.parametrize("bad", ["sometimes", "step:", "step:-3", "step:1.5", "lit:", "lit:patience=2",
                                 "lit:threshold=x", "lit:threshold=0.01,patience=0", "lit:threshold=0.1,speed=3",
                                 "lit:threshold=-1"])
def test_parse_refuses_bad_schedules(bad):
    with pytest.raises(ConfigError) as e:
        parse_unfreeze(bad)
    assert "never | step:N | lit" in str(e.value) or "bad unfreeze schedule" in str(e.value)


def _fire_step(rule, losses):
    for step, loss in enumerate(losses, 1):
        if rule.update(loss):
            return step
    return None


def test_lit_fires_after_patience_stalled_windows_in_a_row():
    # windows of 2 steps; window means: 10, 8 (-20%), 7.9 (-1.25%), 7.89 (-0.13%), 7.88 ...
    losses = [10, 10, 8, 8, 7.9, 7.9, 7.89, 7.89, 7.88, 7.88, 7.87, 7.87]
    # threshold 2%: window 3 (steps 5-6) improves 1.25% < 2% -> stalled 1; window 4 -> stalled 2
    assert _fire_step(LITRule(0.02, 1, 2), losses) == 6
    assert _fire_step(LITRule(0.02, 2, 2), losses) == 8
    assert _fire_step(LITRule(0.02, 3, 2), losses) == 10
    # threshold 1%: window 3 (1.25%) is not stalled; windows 4, 5, 6 are
    assert _fire_step(LITRule(0.01, 1, 2), losses) == 8
    assert _fire_step(LITRule(0.01, 3, 2), losses) == 12
    assert _fire_step(LITRule(0.0001, 1, 2), losses) is None


def test_lit_patience_counts_cumulatively_as_the_paper_and_in_a_row_for_the_variant():
    # window means: 10, 9.99 (stalled), 9 (10% better), 8.99 (stalled), 8.98 (stalled)
    losses = [10, 9.99, 9, 8.99, 8.98]
    assert _fire_step(LITRule(0.01, 2, 1), losses) == 4                      # paper: 2nd stalled window
    assert _fire_step(LITRule(0.01, 2, 1, consecutive=True), losses) == 5    # variant: the good window resets
    rule = LITRule(0.01, 2, 1, consecutive=True)
    _fire_step(rule, losses)
    assert rule.history[2]["improvement"] == pytest.approx((9.99 - 9) / 9.99)
    assert rule.fired and rule.update(1.0) is False          # fires once


def paper_step_to_unfreeze(losses, checkpoint_step, threshold, patience):
    """The paper's rule, transcribed from RetNet-XATL ``loss_from_wandb.ipynb`` (``compute_checkpoint_loss``,
    ``compute_improvements``, ``get_step_to_unfreeze``; accum_step=1). Its loop falls through to the last
    checkpoint when patience never runs out; that case returns None here (xatl's rule never fires then)."""
    checkpoint_losses, hist = {}, []
    for i, loss in enumerate(losses, 1):
        hist.append(loss)
        if i % checkpoint_step == 0:
            checkpoint_losses[i] = sum(hist) / len(hist)
            hist = []
    values = list(checkpoint_losses.values())
    improvements = [(a - b) / a for a, b in zip(values[:-1], values[1:])]
    for i, imp in enumerate(improvements):
        if imp < threshold:
            patience -= 1
        if patience == 0:
            return list(checkpoint_losses)[i + 1]
    return None


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("threshold,patience,window", [(0.01, 1, 5), (0.005, 2, 5), (0.02, 3, 4), (0.01, 4, 3)])
def test_lit_replays_the_papers_rule_on_logged_losses(seed, threshold, patience, window):
    """On noisy, flattening loss series the rule fires at the step the paper's own function returns."""
    import random

    rng = random.Random(seed)
    losses = [6.0 * (1 + 3 * math.exp(-s / 40)) / 4 + rng.gauss(0, 0.04) for s in range(1, 301)]
    rule = LITRule(threshold, patience, window)
    assert _fire_step(rule, losses) == paper_step_to_unfreeze(losses, window, threshold, patience)


def test_lit_state_round_trip_fires_at_the_same_step():
    losses = [10, 10, 8, 8, 7.9, 7.9, 7.89, 7.89, 7.88, 7.88]
    a = LITRule(0.02, 2, 2)
    for x in losses[:5]:
        a.update(x)
    b = LITRule(0.02, 2, 2)
    b.load_state_dict(a.state_dict())
    assert _fire_step(b, losses[5:]) + 5 == 8


def test_unfreeze_schedule():
    s = UnfreezeSchedule("step:3", max_steps=10)
    assert s.initially_frozen and [s.observe(i, 1.0) for i in (1, 2, 3)] == [False, False, True]
    assert not UnfreezeSchedule("step:0", 10).initially_frozen
    assert not any(UnfreezeSchedule("never", 10).observe(i, 1.0) for i in range(1, 11))
    paper = UnfreezeSchedule("lit:threshold=0.01", max_steps=400).lit
    assert (paper.window, paper.consecutive) == (14, False)              # 5k of 145k steps: 400 / 29
    variant = UnfreezeSchedule("lit-consecutive:threshold=0.01", max_steps=400).lit
    assert (variant.window, variant.consecutive) == (20, True)           # 1/20 of the steps
    assert str(parse_unfreeze("lit-consecutive:threshold=0.01,patience=2")) == \
        "lit-consecutive:threshold=0.01,patience=2"


def test_lr_shapes():
    assert lr_factor(1, 4, 20, 0.1) == pytest.approx(0.25)
    assert lr_factor(4, 4, 20, 0.1) == pytest.approx(1.0)
    assert lr_factor(20, 4, 20, 0.1) == pytest.approx(0.1)
    assert lr_factor(12, 4, 20, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    f = [lr_factor(s, 4, 20, 0.1) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(f, f[1:]))                    # monotone decay after warm-up
    main = lambda t: lr_factor(t, 4, 20, 0.1)  # noqa: E731
    assert copied_lr_factor(10, None, 5, main) == 0.0                 # frozen
    assert copied_lr_factor(8, 8, 5, main) == 0.0                     # unfrozen after step 8: not yet at step 8
    # the paper's re-warm: a linear ramp to the main schedule's value at the end of the ramp (step 13), then it
    assert copied_lr_factor(10, 8, 5, main) == pytest.approx(2 / 5 * main(13))
    assert copied_lr_factor(13, 8, 5, main) == pytest.approx(main(13))
    assert copied_lr_factor(20, 8, 5, main) == pytest.approx(main(20))
    assert copied_lr_factor(2, 0, 0, main) == pytest.approx(main(2))   # no ramp: the main schedule at once

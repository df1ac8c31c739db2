"""The speedup rule on synthetic validation-loss curves."""

from __future__ import annotations

import math

import pytest

from xatl.experiment.speedup import speedup, spread, steps_to_reach

SCRATCH = [(0, 10.0), (10, 8.0), (20, 6.0), (30, 5.0), (40, 4.0)]


def test_interpolated_crossing():
    # XATL crosses 4.0 between (10, 5.0) and (20, 3.5): 10 + (5 - 4) / (5 - 3.5) * 10 = 16.667 steps
    sp = speedup(SCRATCH, [(0, 7.0), (10, 5.0), (20, 3.5), (40, 3.0)])
    assert sp.target == 4.0
    assert sp.scratch_steps == pytest.approx(40.0)
    assert sp.xatl_steps == pytest.approx(16.6667, abs=1e-3)
    assert sp.value == pytest.approx(2.4, abs=1e-3)
    assert not sp.lower_bound
    assert sp.text() == "2.40x"
    assert not sp.meets(2.5) and sp.meets(2.4)


def test_never_reached_is_not_a_number():
    sp = speedup(SCRATCH, [(0, 9.0), (20, 6.0), (40, 4.2)])
    assert sp.value is None and not sp.reached
    assert sp.text() == "not reached"
    assert not sp.meets(1.0)
    d = sp.to_dict()
    assert d["speedup"] is None and d["reached"] is False and d["text"] == "not reached"


def test_already_below_at_first_eval_is_a_lower_bound():
    sp = speedup(SCRATCH, [(10, 3.9), (20, 3.5)])
    assert sp.xatl_steps == 10 and sp.value == pytest.approx(4.0)
    assert sp.lower_bound and sp.text() == ">= 4.00x"


def test_below_at_step_zero_is_unbounded():
    sp = speedup(SCRATCH, [(0, 3.0), (10, 2.9)])
    assert math.isinf(sp.value) and sp.lower_bound
    assert sp.to_dict()["speedup"] is None and sp.to_dict()["unbounded"] is True
    assert sp.meets(100.0)


def test_noisy_scratch_reaches_its_final_loss_early():
    # scratch dips to 3.9 at step 30 and ends at 4.0: it first reaches 4.0 at 25 + interpolation
    scratch = [(10, 6.0), (20, 5.0), (30, 3.9), (40, 4.0)]
    assert steps_to_reach(scratch, 4.0).steps == pytest.approx(20 + (5.0 - 4.0) / (5.0 - 3.9) * 10)
    sp = speedup(scratch, [(10, 4.5), (20, 4.0)])
    assert sp.xatl_steps == pytest.approx(20.0)
    assert sp.value == pytest.approx((20 + 10 / 1.1) / 20)


def test_nan_points_are_dropped_and_empty_curves_have_no_speedup():
    sp = speedup(SCRATCH, [(10, float("nan")), (20, 3.0)])
    assert sp.xatl_steps == 20 and sp.lower_bound
    assert speedup([], SCRATCH).text() == "no curve"
    assert speedup(SCRATCH, []).value is None


def test_spread():
    assert spread([1.0, 3.0, None]) == (2.0, pytest.approx(math.sqrt(2)), 2)
    assert spread([2.0]) == (2.0, None, 1)
    assert spread([None]) == (None, None, 0)


# --------------------------------------------------------------- measured where the curves cross (issue 13)
from xatl.experiment.speedup import crossing, range_verdict, speedup_curve, value_at  # noqa: E402

LONG = [(0, 8.0), (100, 7.0), (200, 6.0), (300, 5.5), (400, 5.2), (600, 5.0)]


def test_crossing_at_xatl_final_loss_is_measured_on_the_longer_baseline():
    xatl = [(0, 6.5), (10, 6.0), (20, 5.8), (50, 5.5), (100, 5.4)]
    sp = crossing(LONG, xatl)
    assert sp.target == 5.4
    assert sp.xatl_steps == 100
    assert sp.scratch_steps == pytest.approx(300 + 100 * (5.5 - 5.4) / (5.5 - 5.2))
    assert sp.value == pytest.approx(sp.scratch_steps / 100) and not sp.lower_bound
    assert sp.text() == f"{sp.value:.2f}x"


def test_crossing_the_other_way_round_gives_a_speedup_below_one():
    slow = [(0, 9.0), (100, 8.0), (400, 6.0), (800, 5.5)]          # "XATL" that is slower than scratch
    sp = crossing(LONG, slow)
    assert sp.value == pytest.approx(300 / 800) and sp.value < 1


def test_a_target_scratch_never_reaches_gives_no_number():
    good = [(0, 6.0), (50, 4.8)]
    sp = crossing(LONG, good)
    assert sp.value is None and not sp.reached and sp.text() == "not reached"


def test_xatl_at_its_final_loss_already_at_step_0_is_unbounded_not_a_number():
    flat = [(0, 5.4), (10, 5.6), (20, 5.4)]                          # dips back to its step-0 loss
    sp = crossing(LONG, flat)
    assert sp.xatl_steps == 0 and sp.value == float("inf") and not sp.to_dict()["speedup"]
    assert sp.to_dict()["unbounded"]


def test_a_curve_that_dips_below_the_target_and_rises_again_counts_its_first_crossing():
    # scratch dips below 5.4 at step 300 (5.3), rises to 5.6, then ends at 5.35
    scratch = [(0, 8.0), (200, 6.0), (300, 5.3), (400, 5.6), (600, 5.35)]
    xatl = [(0, 6.5), (20, 5.9), (40, 5.3), (60, 5.45), (100, 5.4)]   # XATL too: first at/below 5.4 near step 40
    sp = crossing(scratch, xatl)
    assert sp.scratch_steps == pytest.approx(200 + 100 * (6.0 - 5.4) / (6.0 - 5.3))
    assert sp.xatl_steps == pytest.approx(20 + 20 * (5.9 - 5.4) / (5.9 - 5.3))
    assert sp.value == pytest.approx(sp.scratch_steps / sp.xatl_steps)


def test_speedup_curve_over_targets_starts_at_step_0_and_skips_unreached_targets():
    xatl = [(0, 6.5), (10, 6.0), (20, 6.1), (50, 5.5), (100, 4.9)]
    pts = speedup_curve(LONG, xatl)
    assert [p["step"] for p in pts] == [0, 10, 50, 100]             # new lows only (step 20 is not one)
    assert pts[0]["unbounded"] and pts[0]["speedup"] is None       # XATL starts below a loss scratch needs steps for
    assert pts[0]["scratch_steps"] == pytest.approx(150)
    assert pts[1]["speedup"] == pytest.approx(200 / 10)
    assert pts[2]["speedup"] == pytest.approx(300 / 50)
    assert pts[3]["speedup"] is None and not pts[3]["reached"]       # scratch never gets to 4.9


def test_value_at_interpolates_flops_at_fractional_steps():
    flops = [(0, 0.0), (10, 100.0), (20, 300.0)]
    assert value_at(flops, 15) == pytest.approx(200.0)
    assert value_at(flops, 0) == 0.0 and value_at(flops, 25) is None and value_at(flops, None) is None


def test_range_verdict_against_the_papers_bar_needs_the_whole_seed_range():
    assert range_verdict([3.1, 2.9, 3.4], 2.5)[0] is True
    assert range_verdict([2.1, 2.3, 2.2], 2.5)[0] is False
    ok, why = range_verdict([2.0, 3.0, 2.7], 2.5)
    assert ok is None and "straddle" in why and "not established" in why
    assert range_verdict([3.0], 2.5)[0] is None                     # one seed: no spread
    assert range_verdict([3.0, None, 3.2], 2.5)[0] is None          # a seed that never crossed
    assert range_verdict([float("inf"), 3.0], 2.5)[0] is True

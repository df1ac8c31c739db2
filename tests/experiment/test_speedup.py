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

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


def test_calibration_times_what_stage_1_trains(monkeypatch):
    """The wall-clock plan times a stage-1 step with the parameters stage 1 trains (the LCI mixers' new ones, not
    the copied Q/K/V/O, whose gradients would make the step half as slow again and the plan short)."""
    import xatl
    from tiny import tiny_donor
    from xatl.heal import HealConfig
    from xatl.heal import run as heal_run
    from xatl.transfer import transfer

    donor = tiny_donor("llama")
    config = xatl.student_config(donor.config, mixer="lolcats", mixer_options={"window": 4})
    student, report = transfer(donor, config, "all", consume_donor=False)
    seen = {}

    def fake_steps(student, donor, ids, align_params, kd_temperature):
        seen["align"] = {id(p) for p in align_params}
        return {k: (lambda: None) for k in ("align", "lm", "lm_kd", "forward", "restore")}

    monkeypatch.setattr(heal_run, "step_functions", fake_steps)
    cfg = HealConfig(donor="tiny", out_dir="unused", block_size=8)
    heal_run.calibrate(student, donor, cfg, report)
    names = {n for n, p in student.named_parameters() if id(p) in seen["align"]}
    mixer = student.model.layers[0].mixer
    assert names and all(".mixer." in n for n in names)
    assert {id(p) for p in mixer.q_map.parameters()} <= seen["align"] and id(mixer.window_factor) in seen["align"]
    assert not {id(p) for p in (mixer.q_proj.weight, mixer.k_proj.weight, mixer.v_proj.weight,
                                mixer.o_proj.weight)} & seen["align"]
    heal_run.calibrate(student, donor, cfg)                                        # no report: every mixer weight
    assert id(mixer.q_proj.weight) in seen["align"]

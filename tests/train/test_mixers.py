"""Training depends on no particular mixer: every registered mixer's student aligns, distils and trains."""

from __future__ import annotations

import math

import pytest
from train_helpers import quick

import xatl
from xatl.train import AlignConfig, KDConfig, train
from xatl.train.metrics import step_records


@pytest.mark.parametrize("mixer", sorted(xatl.MIXERS))
def test_every_mixer_trains(mixer, donor, data, tmp_path):
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer=mixer), seed=0)
    path = xatl.save_student(student, tmp_path / "student", report)
    # an all-softmax student receives every donor weight: nothing would train while frozen (refused, see below)
    softmax = mixer == "softmax"
    align = AlignConfig(steps=0 if softmax else 2)
    cfg = quick(path, tmp_path / "run", max_steps=3, unfreeze="step:1", align=align, kd=KDConfig(weight=0.5),
                eval_every=0, save_every=0, freeze="none" if softmax else "copied")
    result = train(cfg, data, donor=donor, progress=False)
    recs = step_records(result.metrics_path)
    assert result.final_step == align.steps + 3 and all(math.isfinite(r["loss"]) for r in recs)
    assert [r["stage"] for r in recs] == ["align"] * align.steps + ["lm"] * 3
    assert [r["frozen"] for r in recs if r["stage"] == "lm"] == ([False] * 3 if softmax else [True, False, False])
    assert xatl.XATLForCausalLM.from_pretrained(result.final_dir).config.mixer == mixer


def test_nothing_to_train_is_refused(donor, data, tmp_path):
    from xatl.errors import TrainingError

    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="softmax"), seed=0)
    path = xatl.save_student(student, tmp_path / "student", report)
    with pytest.raises(TrainingError, match="nothing to train: every parameter is copied and frozen"):
        train(quick(path, tmp_path / "run", unfreeze="step:2"), data, progress=False)

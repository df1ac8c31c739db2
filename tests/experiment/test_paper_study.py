"""A minute-sized run of the `paper` recipe (its `minute` preset) with the real trainer: the learning-rate sweep
runs first and picks each arm's rate, the first seed's main run is the sweep's winner (not trained twice), the
baseline trains on its own longer budget, and the report has every section, the crossing, compute and sweep."""

from __future__ import annotations

import json

import pytest

from xatl.experiment import load_recipe, run_experiment
from xatl.experiment.report import SECTIONS

pytestmark = [pytest.mark.slow, pytest.mark.real]


def test_minute_sized_paper_study(tmp_path):
    recipe = load_recipe("paper", preset="minute")
    report = run_experiment(recipe, tmp_path / "runs", progress=False, command="xatl run paper --preset minute")
    study = report.parent
    text = report.read_text()
    for name in SECTIONS:
        assert f"\n## {name}\n" in text, name
    summary = json.loads((study / "summary.json").read_text())

    sweeps = {(s["student"], s["mixer"]): s for s in summary["sweeps"]}
    assert set(sweeps) == {("xatl", "retention"), ("scratch", "retention")}
    for (student, _), sw in sweeps.items():
        finals = {r["lr"]: r["final_val_loss"] for r in sw["runs"]}
        assert set(finals) == {3e-3, 6e-3} and sw["best_lr"] == min(finals, key=finals.get)
        for seed in (0, 1):                                   # every seed trains at the arm's own best rate
            assert summary["runs"][f"retention-{student}-s{seed}"]["lr"] == sw["best_lr"]
        first = summary["runs"][f"retention-{student}-s0"]  # the sweep's winner, reused, with its curve
        assert first["final_val_loss"] == finals[sw["best_lr"]]
    assert (study / "plots" / "lr_sweep.png").is_file() and "plots/lr_sweep.png" in text

    xatl, scratch = summary["runs"]["retention-xatl-s0"], summary["runs"]["retention-scratch-s0"]
    assert [s for s, _ in xatl["curve"]] == [0, 1, 2, 4]                 # step 0, eval_at [1], every 2
    assert scratch["curve"][0][0] == 0 and scratch["curve"][-1][0] == 16   # the baseline's own, longer budget
    assert xatl["tokens"] == 4 * 4 * 128 and scratch["tokens"] == 16 * 4 * 128
    assert xatl["flops_curve"][0] == [0, 0.0] and xatl["flops_curve"][-1][1] == pytest.approx(xatl["flops"])
    assert xatl["crossing"]["target_loss"] == pytest.approx(xatl["final_val_loss"])
    assert xatl["speedup_curve"][0]["step"] == 0                           # the curve over targets starts at 0
    main = summary["main"]["retention"]
    assert len(main["crossings"]) == 2 and "crossing_verdict" in main
    compute = xatl["compute"]
    assert compute["donor_flops"] > 0
    if compute["xatl_flops"] is not None and compute["scratch_flops"] is not None:
        assert compute["end_to_end_ratio"] == pytest.approx(
            compute["scratch_flops"] / (compute["donor_flops"] + compute["xatl_flops"]))
    assert "end to end" in text and "paper's convention" in text
    assert "| xatl |" in text and "| 16 |" in text                      # the setup table lists each student's steps

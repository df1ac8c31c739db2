"""A minute-sized study runs end to end with the real trainer, evaluator and profiler, and its report has every
section, its plots and a speedup for every non-baseline run."""

from __future__ import annotations

import json

import datasets
import pytest
from experiment_helpers import tiny_raw

from xatl.experiment import parse_recipe, run_experiment
from xatl.experiment.report import SECTIONS

pytestmark = [pytest.mark.slow, pytest.mark.real]


def test_minute_sized_study_end_to_end(tmp_path):
    recipe = parse_recipe(tiny_raw())
    report = run_experiment(recipe, tmp_path / "runs", progress=False, command="xatl run tiny.yaml")
    assert datasets.is_progress_bar_enabled()                         # silenced for the run, restored after
    study = tmp_path / "runs" / "tiny"
    text = report.read_text()
    for name in SECTIONS:
        assert f"\n## {name}\n" in text, name
    assert "- Command: `xatl run tiny.yaml`" in text and "- Machine: " in text and "torch " in text
    for png in ("curves_main", "curves_transfer", "curves_hybrid", "curves_freeze", "donor", "decode_latency",
                "cache_memory"):
        path = study / "plots" / f"{png}.png"
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG", png
        assert f"plots/{png}.png" in text, png

    summary = json.loads((study / "summary.json").read_text())
    runs = summary["runs"]
    assert len(runs) == 8
    for run in runs.values():
        assert [s for s, _ in run["curve"]] == [0, 4, 8, 12]           # evaluations before step 1, at 4, 8, 12
        assert run["tokens"] == 12 * 8 * 32                            # equal budgets: steps x batch x block
        assert run["eval"]["ppl"] > 1 and "piqa" in run["eval"]["tasks"]
        if run["student"] == "scratch":
            assert run["speedup"] is None
        else:
            assert run["speedup"]["text"] in text
    assert runs["retention-xatl-s0"]["unfreeze_step"] == 6
    assert runs["retention-frozen-s0"]["unfreeze_step"] is None
    assert set(summary["main"]) == {"retention", "gla"}
    assert "| retention | frozen | 0, 1 |" in text                     # seed spread of the two-seed student
    assert [p["name"] for p in summary["profiles"]] == ["donor (softmax)", "retention xatl", "gla xatl",
                                                         "retention hybrid"]
    assert summary["donor"]["eval"]["ppl"] > 1

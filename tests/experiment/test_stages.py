"""Resumable stages: done stages are skipped, a killed stage resumes, changed or forced stages start over; a study
killed in the middle of a student continues where it stopped."""

from __future__ import annotations

import json

import pytest
from experiment_helpers import TinyTrainer, tiny_raw, write_documents

from xatl.errors import OutputExistsError
from xatl.experiment import StageRunner, parse_recipe, run_experiment


def test_stage_runner_skip_resume_restart(tmp_path):
    calls = []

    def work(d):
        calls.append(sorted(p.name for p in d.iterdir()))
        (d / "out.txt").write_text("x")
        return {"n": len(calls)}

    runner = StageRunner(tmp_path)
    first = runner.run("a", {"k": 1}, work)
    assert first["result"] == {"n": 1} and (tmp_path / "a" / "done.json").is_file()
    assert runner.run("a", {"k": 1}, work)["token"] == first["token"]          # skipped
    assert runner.log[-1]["status"] == "skipped" and len(calls) == 1

    def killed(d):
        (d / "partial.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StageRunner(tmp_path).run("b", {"k": 1}, killed)
    assert not (tmp_path / "b" / "done.json").exists()
    again = StageRunner(tmp_path)
    again.run("b", {"k": 1}, work)
    assert again.log[-1]["status"] == "resumed"
    assert "partial.txt" in calls[-1]                        # the killed stage's files are kept for resuming

    changed = StageRunner(tmp_path)
    redone = changed.run("a", {"k": 2}, work)                # inputs changed: start over in an empty directory
    assert redone["token"] != first["token"] and calls[-1] == ["stage.json"]
    forced = StageRunner(tmp_path, force=["a"])
    assert forced.run("a", {"k": 2}, work)["token"] != redone["token"]
    assert forced.log[-1]["status"] == "ran"
    assert StageRunner(tmp_path, force=["students"]).forced("students/x-y-s0")
    assert not StageRunner(tmp_path, force=["students"]).forced("studentsx")


def test_a_second_run_on_the_same_study_is_refused(tmp_path):
    runner = StageRunner(tmp_path)
    with runner.lock():
        with pytest.raises(OutputExistsError, match="another `xatl run` is working"):
            with StageRunner(tmp_path).lock():
                pass


def _quick(tmp_path) -> dict:
    docs = write_documents(tmp_path / "docs.jsonl", n=80)
    raw = tiny_raw(name="quick")
    raw["data"] = {"sources": [str(docs)], "block_size": 32, "val_documents": 4}
    raw["donor"]["train"].update(max_steps=6, micro_batch_size=4, eval_every=3)
    raw["train"].update(max_steps=6, micro_batch_size=4, eval_every=3)
    raw["students"] = [s for s in raw["students"] if s["name"] in ("xatl", "scratch")]
    for s in raw["students"]:
        s["mixers"] = ["retention"]
    raw["eval"] = {"tasks": ["ppl"], "ppl_documents": 2}
    raw["profile"] = {"enabled": False}
    return raw


def test_killed_study_resumes_and_skips_completed_stages(tmp_path):
    recipe = parse_recipe(_quick(tmp_path))
    out = tmp_path / "runs"
    killer = TinyTrainer(fail="retention-scratch-s0")
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_experiment(recipe, out, trainer=killer, progress=False)
    study = out / "quick"
    assert [j.out_dir.split("/")[-2] for j in killer.jobs] == ["donor", "retention-xatl-s0", "retention-scratch-s0"]
    for stage in ("tokenizer", "data", "donor", "students/retention-xatl-s0"):
        assert (study / stage / "done.json").is_file(), stage
    assert not (study / "students/retention-scratch-s0/done.json").exists()
    assert (study / "students/retention-scratch-s0/train/metrics.jsonl").is_file()
    donor_token = json.loads((study / "donor/done.json").read_text())["token"]

    trainer = TinyTrainer()
    report = run_experiment(recipe, out, trainer=trainer, progress=False)
    assert [j.out_dir.split("/")[-2] for j in trainer.jobs] == ["retention-scratch-s0"]   # only the killed one
    assert json.loads((study / "donor/done.json").read_text())["token"] == donor_token
    marker = json.loads((study / "students/retention-scratch-s0/done.json").read_text())
    assert marker["resumed"] is True and marker["result"]["final_val_loss"] is not None
    assert report.is_file() and "## Headline: XATL vs scratch" in report.read_text()

    # nothing left to do: a third run trains nothing; --force students redoes both students only
    third = TinyTrainer()
    run_experiment(recipe, out, trainer=third, progress=False)
    assert third.jobs == []
    forced = TinyTrainer()
    run_experiment(recipe, out, trainer=forced, progress=False, force=["students"])
    assert [j.out_dir.split("/")[-2] for j in forced.jobs] == ["retention-xatl-s0", "retention-scratch-s0"]
    assert json.loads((study / "donor/done.json").read_text())["token"] == donor_token


def test_a_changed_budget_redoes_the_students_not_the_donor(tmp_path):
    raw = _quick(tmp_path)
    out = tmp_path / "runs"
    run_experiment(parse_recipe(raw), out, trainer=TinyTrainer(), progress=False)
    raw["train"]["max_steps"] = 4
    trainer = TinyTrainer()
    run_experiment(parse_recipe(raw), out, trainer=trainer, progress=False)
    assert [j.out_dir.split("/")[-2] for j in trainer.jobs] == ["retention-xatl-s0", "retention-scratch-s0"]
    rows = (out / "quick/students/retention-xatl-s0/train/metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == 4

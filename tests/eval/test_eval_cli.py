"""``xatl eval`` end to end on a tiny model and the fixture suite."""

from __future__ import annotations

import json

import pytest

from tiny import tiny_donor
from xatl.cli.main import main
from xatl.eval import evaluate_path


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory, tokenizer):
    """A second tiny model (another seed) to play the donor."""
    path = tmp_path_factory.mktemp("tiny-donor")
    tiny_donor("llama", seed=1, max_position_embeddings=512).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_eval_writes_results_json(tiny_dir, suite, tmp_path, capsys):
    data = tmp_path / "held.jsonl"
    data.write_text('{"text": "a held out document"}\n')
    out = tmp_path / "res" / "student.json"
    args = ["eval", "--model", str(tiny_dir), "--tasks", "piqa,lambada,ppl", "--suite", str(suite), "--data",
            str(data), "--out", str(out), "--no-progress", "--batch-size", "3"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "piqa" in table and "acc_norm" in table and "bits_per_byte" in table
    res = json.loads(out.read_text())
    assert list(res["tasks"]) == ["piqa", "lambada", "ppl"]
    api = evaluate_path(tiny_dir, "piqa,lambada,ppl", suite=suite, data=data, batch_size=3, progress=False)
    for task in res["tasks"]:
        assert res["tasks"][task]["metrics"] == pytest.approx(api["tasks"][task]["metrics"])
    assert res["model"]["sha256"] == api["model"]["sha256"]


def test_eval_relative_to_donor(tiny_dir, other_dir, suite, tmp_path, capsys):
    donor_json = tmp_path / "donor.json"
    assert main(["eval", "--model", str(other_dir), "--tasks", "piqa,arc_easy", "--suite", str(suite),
                 "--out", str(donor_json), "--no-progress"]) == 0
    student_json = tmp_path / "student.json"
    assert main(["eval", "--model", str(tiny_dir), "--tasks", "piqa,arc_easy", "--suite", str(suite),
                 "--donor-results", str(donor_json), "--out", str(student_json), "--no-progress"]) == 0
    assert "relative" in capsys.readouterr().out
    student, donor = json.loads(student_json.read_text()), json.loads(donor_json.read_text())
    for task in ("piqa", "arc_easy"):
        s, d = student["tasks"][task]["metrics"]["acc"], donor["tasks"][task]["metrics"]["acc"]
        c = student["tasks"][task]["chance"]
        err = donor["tasks"][task]["metrics"]["acc_stderr"]
        expected = (s - c) / (d - c) if d - c > 2 * err else None     # only where the donor is above chance
        assert student["relative_to_donor"][task]["acc"] == pytest.approx(expected)
    # --donor evaluates the donor with the same code and settings: same relative scores
    direct = evaluate_path(tiny_dir, "piqa,arc_easy", donor=other_dir, suite=suite, progress=False)
    for task, rel in student["relative_to_donor"].items():
        assert direct["relative_to_donor"][task] == pytest.approx(rel)
    assert direct["donor"]["model"]["sha256"] == donor["model"]["sha256"]


def test_eval_relative_needs_the_same_documents(tiny_dir, suite, tmp_path):
    donor = evaluate_path(tiny_dir, "piqa", suite=suite, limit=2, progress=False)
    res = evaluate_path(tiny_dir, "piqa", suite=suite, donor_results=donor, progress=False)
    assert res["relative_to_donor"] == {} and "different documents" in res["relative_skipped"]["piqa"]


def test_write_lm_eval_tasks_and_list(suite, tmp_path, capsys):
    assert main(["eval", "--write-lm-eval-tasks", str(tmp_path / "y"), "--suite", str(suite), "--tasks",
                 "piqa,winogrande"]) == 0
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == ["xatl_piqa.yaml", "xatl_winogrande.yaml"]
    assert main(["eval", "--list-tasks"]) == 0
    assert "winogrande" in capsys.readouterr().out

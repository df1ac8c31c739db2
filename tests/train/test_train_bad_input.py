"""Bad input gives one clear error naming the problem and the fix."""

from __future__ import annotations

import shutil

import pytest
from datasets import DatasetDict
from train_helpers import blocks, make_data, quick

import xatl
from tiny import tiny_donor
from xatl.cli.main import main
from xatl.errors import ConfigError, DataError, OutputExistsError, TrainingError
from xatl.train import TrainConfig, train


def test_data_smaller_than_one_batch(student_dir, tmp_path):
    small = DatasetDict(train=blocks(6, 1), validation=blocks(2, 2))
    with pytest.raises(DataError, match=r"holds 6 blocks but one optimizer step needs 8"):
        train(quick(student_dir, tmp_path / "run", micro_batch_size=4, grad_accum=2), small, progress=False)
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DataError):
        train(quick(student_dir, tmp_path / "mine", micro_batch_size=4, grad_accum=2), small, progress=False)
    assert {p.name for p in (tmp_path / "mine").iterdir()} - {".train.lock"} == {"notes.txt"}   # not made by it: kept


def test_bad_blocks(student_dir, tmp_path):
    with pytest.raises(DataError, match="outside the model's vocabulary"):
        big_ids = DatasetDict(train=blocks(8, 1).map(lambda r: {"input_ids": [500] * 16}))
        train(quick(student_dir, tmp_path / "a"), big_ids, progress=False)
    with pytest.raises(DataError, match="longer than the model's context of 128"):
        train(quick(student_dir, tmp_path / "b"), make_data(block=200), progress=False)
    with pytest.raises(DataError, match="no 'input_ids'"):
        train(quick(student_dir, tmp_path / "c"), blocks(8, 1).rename_column("input_ids", "ids"), progress=False)
    with pytest.raises(DataError, match="no training data"):
        train(quick(student_dir, tmp_path / "d"), None, progress=False)


def test_freezing_needs_a_transfer_report(student_dir, data, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(student_dir, bare)
    (bare / "transfer_report.json").unlink()
    with pytest.raises(TrainingError, match="needs the student's transfer_report.json.*--freeze none"):
        train(quick(bare, tmp_path / "run"), data, progress=False)
    result = train(quick(bare, tmp_path / "ok", freeze="none", max_steps=2), data, progress=False)   # fine
    assert result.final_step == 2


def test_unknown_schedule_and_bad_settings(student_dir):
    with pytest.raises(ConfigError, match="unknown unfreeze schedule 'sometimes'; use never \\| step:N"):
        quick(student_dir, "x", unfreeze="sometimes")
    with pytest.raises(ConfigError, match="unknown freeze 'all'"):
        quick(student_dir, "x", freeze="all")
    with pytest.raises(ConfigError, match="micro_batch_size must be"):
        quick(student_dir, "x", micro_batch_size=0)
    with pytest.raises(ConfigError, match="would never train the adapters"):
        TrainConfig(model="m", out_dir="o", unfreeze="never", lora={"rank": 4})


def test_resume_from_a_checkpoint_of_another_model(student_dir, data, tmp_path):
    train(quick(student_dir, tmp_path / "run", max_steps=4), data, progress=False)
    donor = tiny_donor("llama", seed=1)
    other, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"))
    other_dir = xatl.save_student(other, tmp_path / "other", report)
    with pytest.raises(TrainingError, match="trained from another model .*pass the same --model, or a new --out"):
        train(quick(other_dir, tmp_path / "run", max_steps=8, resume=True), data, progress=False)
    with pytest.raises(TrainingError, match=r"other training settings \(lr\)"):
        train(quick(student_dir, tmp_path / "run", max_steps=4, lr=0.5, resume=True), data, progress=False)
    with pytest.raises(TrainingError, match="trained on other data"):
        train(quick(student_dir, tmp_path / "run", max_steps=4, resume=True), make_data(n_train=80), progress=False)
    with pytest.raises(OutputExistsError, match="already holds a run"):
        train(quick(student_dir, tmp_path / "run", max_steps=4, resume=False), data, progress=False)
    with pytest.raises(TrainingError, match="no checkpoint to resume from"):
        train(quick(student_dir, tmp_path / "new", resume=True), data, progress=False)


def test_alignment_needs_a_donor(student_dir, data, tmp_path):
    from xatl.train import AlignConfig

    with pytest.raises(TrainingError, match="need the donor model; pass --donor"):
        train(quick(student_dir, tmp_path / "run", align=AlignConfig(steps=2)), data, progress=False)


def test_cli_prints_one_line_and_exits_2(student_dir, data, tmp_path, capsys):
    saved = tmp_path / "blocks"
    DatasetDict(train=blocks(2, 1), validation=blocks(2, 2)).save_to_disk(str(saved))
    code = main(["train", "--model", str(student_dir), "--data", str(saved), "--out", str(tmp_path / "run"),
                 "--steps", "2", "--batch-size", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("xatl train: error: the training data holds 2 blocks")
    assert not (tmp_path / "run").exists()                 # refused before any work: no empty --out left
    code = main(["train", "--model", str(student_dir), "--data", str(saved), "--out", str(tmp_path / "run"),
                 "--unfreeze", "later"])
    assert code == 2 and "unknown unfreeze schedule 'later'" in capsys.readouterr().err


def test_cli_trains_from_a_saved_dataset(student_dir, data, tmp_path, capsys):
    saved = tmp_path / "blocks"
    data.save_to_disk(str(saved))
    code = main(["train", "--model", str(student_dir), "--data", str(saved), "--out", str(tmp_path / "run"),
                 "--steps", "3", "--batch-size", "4", "--unfreeze", "step:1", "--no-tensorboard"])
    out = capsys.readouterr().out
    assert code == 0 and "trained 3 steps, 192 tokens" in out and "unfrozen after LM step 1" in out
    assert xatl.XATLForCausalLM.from_pretrained(tmp_path / "run" / "final") is not None

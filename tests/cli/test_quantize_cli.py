"""``xatl quantize``: a tiny student quantised from the command line, calibrated on a local file; bad input is one
line and exit status 2, with nothing written."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import run_cli

import xatl
from tiny import char_tokenizer, tiny_donor


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    donor = tiny_donor("llama")
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="gla", attention_layers=[1]))
    path = tmp_path_factory.mktemp("q") / "student"
    xatl.save_student(student, path, report, tokenizer=char_tokenizer())
    return path


def test_int8_with_calibration_from_a_file(student_dir, tmp_path, capsys):
    data = tmp_path / "calib.jsonl"
    data.write_text("".join(json.dumps({"text": f"document {i}: " + "some text, " * 20}) + "\n" for i in range(40)))
    out = tmp_path / "int8"
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--to", "int8", "--out", out, "--data", data,
                        "--calibration-blocks", 4, "--calibration-block-size", 16)
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["weight_quantization"] == "int8"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    scales = [m.input_scale for m in model.modules() if hasattr(m, "input_scale")]
    assert scales and not all(torch.equal(s, torch.ones_like(s)) for s in scales)      # calibrated: smoothed
    code, _ = run_cli(capsys, "generate", "--model", out, "--prompt", "abc", "--max-new-tokens", 4, "--quiet")
    assert code == 0


def test_bf16_and_packed_generation(student_dir, tmp_path, capsys):
    out = tmp_path / "bf16"
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--to", "bf16", "--out", out)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    code, _ = run_cli(capsys, "generate", "--model", out, "--dtype", "bfloat16", "--pack", "--prompt", "abc",
                      "--max-new-tokens", 4, "--quiet")
    assert code == 0


@pytest.mark.parametrize("extra,message", [(("--alpha", "2"), "alpha must be in [0.0, 1.0], got 2.0"),
                                           (("--calibration-blocks", "-1"), "calibration_blocks must be")])
def test_bad_settings_are_one_line(student_dir, tmp_path, capsys, extra, message):
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--out", tmp_path / "o", *extra)
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


def test_a_donor_is_refused(tmp_path, capsys):
    tiny_donor("llama").save_pretrained(tmp_path / "donor")
    char_tokenizer().save_pretrained(tmp_path / "donor")
    code, err = run_cli(capsys, "quantize", "--model", tmp_path / "donor", "--out", tmp_path / "o",
                        "--calibration-blocks", 0)
    assert code == 2 and len(err) == 1 and "not an XATL student" in err[0]
    assert not (tmp_path / "o").exists()


def test_training_an_int8_student_is_refused(student_dir, tmp_path, capsys):
    out = tmp_path / "int8"
    assert run_cli(capsys, "quantize", "--model", student_dir, "--out", out, "--calibration-blocks", 0)[0] == 0
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": "some text, " * 30}) + "\n" for _ in range(20)))
    code, err = run_cli(capsys, "train", "--model", out, "--data", data, "--steps", 1, "--block-size", 16,
                        "--out", tmp_path / "run")
    assert code == 2 and len(err) == 1 and "quantised for inference" in err[0], err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())      # nothing half-written

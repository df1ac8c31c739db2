"""``xatl quantize``: a tiny student quantised from the command line, calibrated on a local file; bad input is one
line and exit status 2, with nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


@pytest.mark.parametrize("to", ["int8", "bf16"])
def test_training_a_quantised_student_is_refused(student_dir, tmp_path, capsys, to):
    out = tmp_path / to
    assert run_cli(capsys, "quantize", "--model", student_dir, "--out", out, "--to", to,
                   *(["--calibration-blocks", 0] if to == "int8" else []))[0] == 0
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": "some text, " * 30}) + "\n" for _ in range(20)))
    code, err = run_cli(capsys, "train", "--model", out, "--data", data, "--steps", 1, "--block-size", 16,
                        "--out", tmp_path / "run")
    assert code == 2 and len(err) == 1 and f"is a {to} student, quantised for inference" in err[0], err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())      # nothing half-written


def test_training_into_the_input_model_is_refused(own_student, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": "some text, " * 30}) + "\n" for _ in range(20)))
    before = snapshot(own_student)
    for out in (own_student, own_student / "run", own_student.parent):
        code, err = run_cli(capsys, "train", "--model", own_student, "--data", data, "--steps", 1, "--block-size", 16,
                            "--out", out, "--overwrite")
        assert code == 2 and len(err) == 1 and "the input --model" in err[0], err
    assert snapshot(own_student) == before and not (own_student / "run").exists()


def snapshot(path) -> dict[str, bytes]:
    """{relative path: bytes} of every file below ``path``: the disk state a refusal must leave as it was."""
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture
def own_student(student_dir, tmp_path):
    """A private copy of the tiny student, for refusals that would otherwise overwrite the shared one."""
    import shutil

    return Path(shutil.copytree(student_dir, tmp_path / "student"))


@pytest.mark.parametrize("spelling", ["same", "trailing slash", "relative", "symlink"])
def test_out_equal_to_the_input_model_is_refused(own_student, tmp_path, capsys, monkeypatch, spelling):
    before = snapshot(own_student)
    if spelling == "symlink":
        (tmp_path / "link").symlink_to(own_student, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    out = {"same": own_student, "trailing slash": f"{own_student}/", "relative": "student", "symlink": "link"}[spelling]
    code, err = run_cli(capsys, "quantize", "--model", own_student, "--out", out, "--overwrite",
                        "--calibration-blocks", 0)
    assert code == 2 and len(err) == 1, err
    assert "is the input --model" in err[0] and "choose another directory" in err[0]
    assert snapshot(own_student) == before                                  # the float student is untouched
    assert json.loads((own_student / "config.json").read_text()).get("weight_quantization") is None


@pytest.mark.parametrize("where,message", [("inside", "is inside the input --model"),
                                           ("parent", "contains the input --model")])
def test_out_inside_or_around_the_input_model_is_refused(own_student, tmp_path, capsys, where, message):
    before = snapshot(tmp_path)
    out = own_student / "int8" if where == "inside" else tmp_path
    code, err = run_cli(capsys, "quantize", "--model", own_student, "--out", out, "--overwrite",
                        "--calibration-blocks", 0)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert snapshot(tmp_path) == before and not (own_student / "int8").exists()


def test_out_that_is_a_file_is_refused(student_dir, tmp_path, capsys):
    (tmp_path / "out").write_text("notes")
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--out", tmp_path / "out", "--overwrite",
                        "--calibration-blocks", 0)
    assert code == 2 and len(err) == 1 and "is a file; choose a directory path" in err[0], err
    assert (tmp_path / "out").read_text() == "notes"


@pytest.mark.parametrize("first", ["bf16", "int8"])
@pytest.mark.parametrize("again", ["bf16", "int8"])
def test_an_already_quantised_student_is_refused(student_dir, tmp_path, capsys, first, again):
    src = tmp_path / first
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--to", first, "--out", src,
                        "--calibration-blocks", 0)
    assert code == 0, err
    assert json.loads((src / "config.json").read_text())["quantized_to"] == first
    before = snapshot(src)
    code, err = run_cli(capsys, "quantize", "--model", src, "--to", again, "--out", tmp_path / "again",
                        "--calibration-blocks", 0)
    assert code == 2 and len(err) == 1, err
    assert f"is already quantised ({first}); quantise the float student" in err[0]
    assert not (tmp_path / "again").exists() and snapshot(src) == before


def test_an_unknown_keep_float_name_is_refused(student_dir, tmp_path, capsys):
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--out", tmp_path / "o", "--keep-float",
                        "down_porj", "--calibration-blocks", 0)
    assert code == 2 and len(err) == 1, err
    assert "keep_float 'down_porj' matches no linear layer" in err[0] and "did you mean 'down_proj'" in err[0]
    assert "down_proj" in err[0].split("give a layer name")[1] and "lm_head" in err[0]     # the valid names
    assert not (tmp_path / "o").exists()
    code, err = run_cli(capsys, "quantize", "--model", student_dir, "--out", tmp_path / "o", "--keep-float",
                        "lm_head", "mlp.down_proj", "model.layers.0.mixer.q_proj", "--calibration-blocks", 0)
    assert code == 0, err                                      # names, name endings and full paths all match


@pytest.mark.parametrize("keep", [[], ["none"], ["down_proj", "lm_head"]])
def test_summary_counts_the_layers_actually_quantised(student_dir, tmp_path, capsys, keep):
    from safetensors import safe_open

    from xatl.cli.main import main

    out = tmp_path / "int8"
    flags = ["--keep-float", *keep] if keep else []
    assert main(["quantize", "--model", str(student_dir), "--out", str(out), "--calibration-blocks", "0",
                 *flags]) == 0
    printed = int(re.search(r": (\d+) linear layers to int8", capsys.readouterr().out).group(1))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        int8 = sum(k.endswith(".weight_int8") for k in f.keys())
    assert printed == int8 > 0

"""Broken model files are refused in one line before any work: tensors missing or unexpected, a config naming more
layers than its checkpoint, NaN weights, zero/negative/absurd sizes; crash-damaged outputs (a half-filled directory,
an interrupted --overwrite) are refused or repaired. Nothing is written by a refused command."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from cli_helpers import run_cli
from safetensors.torch import load_file, save_file

import xatl
from tiny import char_tokenizer, tiny_donor
from xatl.utils.fs import PARTIAL, publishing_problem


@pytest.fixture(scope="module")
def good_student(tmp_path_factory):
    donor = tiny_donor("llama")
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), seed=0)
    return xatl.save_student(student, tmp_path_factory.mktemp("broken") / "student", report, tokenizer=char_tokenizer())


@pytest.fixture
def student(good_student, tmp_path):
    d = tmp_path / "student"
    shutil.copytree(good_student, d)
    return d


def edit_weights(d, fn):
    tensors = load_file(d / "model.safetensors")
    fn(tensors)
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    (d / ".xatl-complete").unlink()                 # edited by hand: no longer what xatl wrote


def edit_config(d, **fields):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(fields)
    (d / "config.json").write_text(json.dumps(cfg))
    (d / ".xatl-complete").unlink(missing_ok=True)


def refused(capsys, *argv, expect: str, command: str | None = None):
    code, err = run_cli(capsys, *argv)
    assert code == 2 and len(err) == 1, (code, err)
    assert err[0].startswith(f"xatl {command or argv[0]}: error: ") and expect in err[0], err[0]
    return err[0]


def test_the_good_student_loads(student, capsys):
    code, _ = run_cli(capsys, "generate", "--model", student, "--prompt", "ab", "--max-new-tokens", "2")
    assert code == 0


def test_a_missing_tensor(student, tmp_path, capsys):
    edit_weights(student, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    msg = refused(capsys, "generate", "--model", student, "--prompt", "ab", expect="the checkpoint lacks tensors")
    assert "model.layers.1.mlp.up_proj.weight" in msg
    refused(capsys, "quantize", "--model", student, "--out", tmp_path / "q", expect="lacks tensors")
    assert not (tmp_path / "q").exists()


def test_an_unexpected_tensor(student, capsys):
    edit_weights(student, lambda t: t.update({"model.layers.0.extra.weight": torch.zeros(2)}))
    refused(capsys, "generate", "--model", student, "--prompt", "ab",
            expect="holds unexpected tensors (model.layers.0.extra.weight)")


def test_a_config_naming_more_layers_than_the_checkpoint(student, capsys):
    edit_config(student, num_hidden_layers=5)
    refused(capsys, "generate", "--model", student, "--prompt", "ab",
            expect="config.json says num_hidden_layers = 5 but the checkpoint holds 3 layers")


def test_a_config_naming_fewer_layers_than_the_checkpoint(student, capsys):
    edit_config(student, num_hidden_layers=2)                    # layer 2's tensors are then unexpected
    refused(capsys, "generate", "--model", student, "--prompt", "ab",
            expect="holds unexpected tensors (model.layers.2.")


def test_an_absurd_layer_count_is_refused_before_allocating(student, capsys):
    edit_config(student, num_hidden_layers=100000)
    refused(capsys, "generate", "--model", student, "--prompt", "ab",
            expect="config field num_hidden_layers = 100,000 must be at most 1,024")


def test_nan_weights(student, tmp_path, capsys):
    edit_weights(student, lambda t: t["model.norm.weight"].fill_(float("nan")))
    for argv in (["generate", "--model", student, "--prompt", "ab"],
                 ["eval", "--model", student, "--tasks", "ppl", "--out", tmp_path / "r.json"],
                 ["quantize", "--model", student, "--out", tmp_path / "q"]):
        refused(capsys, *argv, expect="tensor 'model.norm.weight' holds NaN or inf values")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "q").exists()


@pytest.mark.parametrize("field,value,expect", [
    ("num_hidden_layers", 0, "num_hidden_layers = 0 must be at least 1"),
    ("num_hidden_layers", -3, "num_hidden_layers = -3 must be at least 1"),
    ("hidden_size", 0, "hidden_size = 0 must be at least 1"),
    ("num_attention_heads", -1, "num_attention_heads = -1 must be at least 1"),
    ("vocab_size", 10**11, "vocab_size = 100,000,000,000 must be at most"),
    ("intermediate_size", 2.5, "config.json is invalid (Field 'intermediate_size' expected int, got float (value: 2.5))"),
])
def test_degenerate_donor_configs(field, value, expect, tmp_path, capsys):
    d = tmp_path / "donor"
    tiny_donor("llama").save_pretrained(d)
    edit_config(d, **{field: value})
    refused(capsys, "convert", "--donor", d, "--plan", expect=expect)
    refused(capsys, "convert", "--donor", d, "--out", tmp_path / "s", expect=expect)
    assert not (tmp_path / "s").exists()


def test_a_half_filled_directory_is_refused_then_repaired(student, good_student, capsys):
    # what a kill -9 in the middle of filling an empty --out leaves (tests/utils/test_publishing.py makes it happen)
    names = sorted(p.name for p in student.iterdir())
    (student / "model.safetensors").unlink()
    (student / PARTIAL).write_text(json.dumps({"pid": 999999999, "files": names}))
    refused(capsys, "generate", "--model", student, "--prompt", "ab", expect="is incomplete (writing it was "
            "interrupted); rerun the command that wrote it")
    donor = student.parent / "donor"
    tiny_donor("llama").save_pretrained(donor)
    code, _ = run_cli(capsys, "convert", "--donor", donor, "--mixer", "retention", "--out", student)
    assert code == 0 and not (student / PARTIAL).exists()                 # cleared, then filled in place
    assert publishing_problem(student) is None and (student / "model.safetensors").is_file()


def test_a_student_changed_after_it_was_written(student, capsys):
    data = (student / "model.safetensors").read_bytes()
    (student / "model.safetensors").write_bytes(data[: len(data) - 10])
    refused(capsys, "generate", "--model", student, "--prompt", "ab", expect="model.safetensors has")


def test_an_interrupted_overwrite_is_named_then_restored(student, tmp_path, capsys):
    aside = tmp_path / ".student.old-999999999-x1y2z3w4"
    aside.mkdir()
    student.rename(aside / "content")                  # a kill -9 between the two renames of --overwrite
    refused(capsys, "generate", "--model", student, "--prompt", "ab",
            expect="interrupted --overwrite left its previous version in")
    donor = tmp_path / "donor"
    tiny_donor("llama").save_pretrained(donor)
    refused(capsys, "convert", "--donor", donor, "--mixer", "retention", "--out", student,
            expect="already holds a model (restored from an interrupted --overwrite)")
    assert (student / "model.safetensors").is_file() and not aside.exists()
    code, _ = run_cli(capsys, "generate", "--model", student, "--prompt", "ab", "--max-new-tokens", "2")
    assert code == 0


def test_convert_never_writes_over_its_donor(tmp_path, capsys):
    donor = tmp_path / "donor"
    tiny_donor("llama").save_pretrained(donor)
    before = {p.name: p.read_bytes() for p in donor.iterdir()}
    for out in (donor, f"{donor}/", donor / "student", tmp_path):
        refused(capsys, "convert", "--donor", donor, "--mixer", "retention", "--out", out, "--overwrite",
                expect="the input --donor")
    assert {p.name: p.read_bytes() for p in donor.iterdir()} == before


def test_integer_weights_are_not_cast_silently(student, capsys):
    edit_weights(student, lambda t: t.update({"model.norm.weight": t["model.norm.weight"].long()}))
    refused(capsys, "generate", "--model", student, "--prompt", "ab",
            expect="tensor 'model.norm.weight' is stored as I64 where the model needs floating point")

"""`xatl convert`: a good run, and bad input that fails with one clear line, exit 2 and nothing on disk."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import run_cli

from tiny import tiny_donor
from xatl.cli.main import main


def test_convert_writes_student(donor_dir, tmp_path, capsys):
    out = tmp_path / "student"
    code = main(["convert", "--donor", str(donor_dir), "--mixer", "retention", "--attention-layers", "1",
                 "--copy", "default,qkv", "--mixer-option", "chunk_size=8", "--out", str(out)])
    assert code == 0
    assert "copied from the donor" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["attention_layers"] == [1] and cfg["mixer_options"] == {"chunk_size": 8}
    rep = json.loads((out / "transfer_report.json").read_text())
    assert rep["student_tensors"]["model.layers.0.mixer.q_proj.weight"]["status"] == "copied"
    # a second convert into the same directory is refused, the good model untouched
    before = (out / "model.safetensors").read_bytes()
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "linear", "--out", out)
    assert code == 2 and len(err) == 1 and "already holds a model" in err[0] and "--overwrite" in err[0]
    assert (out / "model.safetensors").read_bytes() == before
    # ... unless --overwrite
    assert main(["convert", "--donor", str(donor_dir), "--mixer", "linear", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["mixer"] == "linear"


@pytest.fixture
def corrupt_donor(donor_dir, tmp_path):
    d = tmp_path / "corrupt"
    d.mkdir()
    for f in donor_dir.iterdir():
        data = f.read_bytes()
        (d / f.name).write_bytes(data[: len(data) // 2] if f.suffix == ".safetensors" else data)
    return d


@pytest.fixture
def gpt_j_donor(tmp_path):
    from transformers import GPTJConfig, GPTJForCausalLM

    d = tmp_path / "gptj"
    GPTJForCausalLM(GPTJConfig(vocab_size=99, n_embd=32, n_layer=1, n_head=4, rotary_dim=4, bos_token_id=0, eos_token_id=0)).save_pretrained(d)
    return d


@pytest.fixture
def nan_donor(tmp_path):
    d = tmp_path / "nan"
    model = tiny_donor("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3, 5] = float("inf")
    model.save_pretrained(d)
    return d


@pytest.mark.parametrize("case, argv, expect", [
    ("nonfinite", ["--donor", "{nan}"], "tensor 'model.layers.1.mlp.up_proj.weight' holds NaN or inf"),
    ("empty-copy", ["--donor", "{donor}", "--copy", ""], "the copy set is empty"),
    ("family", ["--donor", "{gptj}"], "unsupported donor family 'gptj'"),
    ("mixer", ["--donor", "{donor}", "--mixer", "transformer-xl"], "unknown mixer 'transformer-xl'"),
    ("layer", ["--donor", "{donor}", "--attention-layers", "1,7"], "attention layer index 7 is out of range"),
    ("copy", ["--donor", "{donor}", "--copy", "embed,attn"], "unknown copy component 'attn'"),
    ("corrupt", ["--donor", "{corrupt}"], "truncated or corrupt"),
    ("option", ["--donor", "{donor}", "--mixer-option", "chunk_size=0"], "chunk_size"),
    ("missing", ["--donor", "./no/such/dir"], "does not exist"),
])
def test_bad_input(case, argv, expect, donor_dir, corrupt_donor, gpt_j_donor, nan_donor, tmp_path, capsys):
    out = tmp_path / "out" / "student"
    paths = {"donor": donor_dir, "corrupt": corrupt_donor, "gptj": gpt_j_donor, "nan": nan_donor}
    argv = [a.format(**paths) for a in argv]
    code, err = run_cli(capsys, "convert", *argv, "--out", out)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("xatl convert: error: "), err
    assert expect in err[0], err[0]
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir())), "partial output left behind"


def test_unsupported_family_lists_supported(gpt_j_donor, tmp_path, capsys):
    code, err = run_cli(capsys, "convert", "--donor", gpt_j_donor, "--out", tmp_path / "o")
    for family in ("llama", "mistral", "qwen2", "gpt_neox", "gpt2"):
        assert family in err[0]


def test_help_lists_convert(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "convert" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out
    assert "--list-mixers" not in out and "lolcats" in out
    torch.manual_seed(0)

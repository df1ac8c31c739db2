"""No code from a model directory runs unless the user asks (Hardening II, item 1).

A directory can name its own Python classes in ``auto_map`` (config.json or tokenizer_config.json). Without an
explicit ``trust_remote_code``, transformers asks "[y/N]" on stdin, and piped input ("y") or a chat's first line
answered it: the payload ran. xatl now always passes ``trust_remote_code=False`` unless ``--trust-remote-code`` is
given, so such a directory is refused in one line and its code never runs, whatever stdin holds.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from cli_helpers import run_cli

from tiny import char_tokenizer, tiny_donor

PAYLOAD = """
import os, pathlib
pathlib.Path(os.environ["XATL_PAYLOAD_MARKER"]).write_text("ran")
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

class EvilConfig(LlamaConfig):
    model_type = "xatl-test-evil"

class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig

class EvilTokenizer(PreTrainedTokenizerFast):
    pass
"""


def _planted(path, where: str):
    """A tiny Llama directory (weights + tokenizer) whose config.json ("config") or tokenizer_config.json
    ("tokenizer") points ``auto_map`` at payload.py."""
    tiny_donor("llama").save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    (path / "payload.py").write_text(PAYLOAD)
    if where == "config":
        cfg = json.loads((path / "config.json").read_text())
        cfg.update(model_type="xatl-test-evil", auto_map={"AutoConfig": "payload.EvilConfig",
                                                          "AutoModelForCausalLM": "payload.EvilModel"})
        (path / "config.json").write_text(json.dumps(cfg))
    else:
        tok = json.loads((path / "tokenizer_config.json").read_text())
        tok.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": [None, "payload.EvilTokenizer"]})
        (path / "tokenizer_config.json").write_text(json.dumps(tok))
    return path


@pytest.fixture
def marker(tmp_path, monkeypatch):
    m = tmp_path / "payload-ran"
    monkeypatch.setenv("XATL_PAYLOAD_MARKER", str(m))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 8 + "hello\n"))      # piped "yes" to any prompt
    return m


COMMANDS = {
    "generate": lambda d, out: ["generate", "--model", d, "--prompt", "hi", "--max-new-tokens", "2"],
    "chat": lambda d, out: ["chat", "--model", d],
    "convert": lambda d, out: ["convert", "--donor", d, "--mixer", "retention", "--out", out],
    "eval": lambda d, out: ["eval", "--model", d, "--tasks", "ppl", "--data", d / "payload.py"],
    "train": lambda d, out: ["train", "--model", d, "--steps", "1", "--out", out],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_code_named_by_config_auto_map_never_runs(command, tmp_path, marker, capsys):
    d = _planted(tmp_path / "model", "config")
    code, err = run_cli(capsys, *COMMANDS[command](d, tmp_path / "out"))
    assert code != 0 and not marker.exists(), err
    assert len(err) == 1 and "custom code" in err[0] and "--trust-remote-code" in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["generate", "convert"])
def test_code_named_by_tokenizer_auto_map_never_runs(command, tmp_path, marker, capsys):
    d = _planted(tmp_path / "model", "tokenizer")
    run_cli(capsys, *COMMANDS[command](d, tmp_path / "out"))
    assert not marker.exists()


def test_trust_remote_code_is_opt_in(tmp_path, marker, capsys):
    """The flag does what it says: with it, the directory's own code is imported (here: the payload runs)."""
    d = _planted(tmp_path / "model", "config")
    run_cli(capsys, "generate", "--trust-remote-code", "--model", d, "--prompt", "hi", "--max-new-tokens", "2")
    assert marker.exists()
    from xatl.utils.remote_code import allow_remote_code, remote_code_allowed

    allow_remote_code(False)
    assert not remote_code_allowed()


def test_every_source_passes_trust_remote_code_explicitly(tmp_path):
    from xatl.donors.load import resolve_source

    d = tmp_path / "m"
    tiny_donor("llama").save_pretrained(d)
    assert resolve_source(d).kwargs == {"trust_remote_code": False}

"""Inputs that used to end in a traceback, or that lost or deleted files: each is now one line, exit status != 0,
and nothing half-written or removed (the hardening issue)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from cli_helpers import run_cli


def test_convert_into_an_unwritable_location(donor_dir, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", blocker / "student")
    assert code == 2 and len(err) == 1 and "cannot be written" in err[0] and "choose another path" in err[0]
    ro = tmp_path / "read-only"
    ro.mkdir()
    real_access = __import__("os").access
    monkeypatch.setattr("os.access", lambda p, mode: False if str(p).startswith(str(ro)) else real_access(p, mode))
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", ro / "student")
    assert code == 2 and len(err) == 1 and f"{str(ro)!r} is not a writable directory" in err[0]
    assert list(ro.iterdir()) == [] and blocker.read_text() == "x"


def test_convert_into_an_empty_mount_point_fills_it_in_place(donor_dir, tmp_path, capsys, monkeypatch):
    mount = tmp_path / "mnt"
    mount.mkdir()
    import os

    real_replace = os.replace

    def no_rename_of_the_mount(src, dst):          # a mount point cannot be renamed (EBUSY)
        if str(src) == str(mount):
            raise OSError(16, "Device or resource busy", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", no_rename_of_the_mount)
    code, _ = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", mount)
    assert code == 0 and (mount / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"]          # no .mnt.tmp-* / .mnt.old-* left
    assert not [p for p in mount.iterdir() if p.name.startswith(".tmp-")]


def test_overwrite_never_deletes_files_xatl_did_not_write(donor_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", out, "--overwrite")
    assert code == 2 and len(err) == 1 and "holds files that are not a model" in err[0]
    assert (out / "thesis.tex").read_text() == "precious" and len(list(out.iterdir())) == 1


def test_non_utf8_recipe(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    code, err = run_cli(capsys, "run", bad, "--check")
    assert code == 2 and len(err) == 1
    assert err[0] == "xatl run: error: recipe bad.yaml: not UTF-8 text (byte 9: b'\\xe9'); save the file as UTF-8"


def test_chat_with_stdin_closed(donor_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    code, err = run_cli(capsys, "chat", "--model", donor_dir)
    assert code == 2 and len(err) == 1 and "stdin is closed" in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(donor_dir, capsys):
    code, err = run_cli(capsys, "generate", "--model", donor_dir, "--prompt", "hi", "--device", "cuda")
    assert code == 2 and len(err) == 1 and "no CUDA GPU is visible here" in err[0] and "--device cpu" in err[0]
    code, err = run_cli(capsys, "generate", "--model", donor_dir, "--prompt", "hi", "--device", "tpu7")
    assert code == 2 and "unknown device 'tpu7'" in err[0]


def test_threads_flag(donor_dir, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", tmp_path / "s",
                         "--threads", "1")
        assert code == 0 and torch.get_num_threads() == 1
        code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", tmp_path / "t",
                         "--threads", "zero")
        assert code == 2 and "--threads: threads must be a whole number >= 1 or 'auto'" in err[0]
        assert not (tmp_path / "t").exists()
    finally:
        torch.set_num_threads(before)


def test_an_os_error_is_one_line(donor_dir, tmp_path, capsys, monkeypatch):
    conv = sys.modules["xatl.transfer.convert"]          # (xatl.transfer.convert is also the function's name)

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "s"))

    monkeypatch.setattr(conv, "save_student", full_disk)
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", tmp_path / "s")
    assert code == 1 and len(err) == 1
    assert err[0].startswith("xatl convert: error: No space left on device: ") and "free disk space" in err[0]


@pytest.mark.parametrize("env, message", [
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, "accelerate is configured for DeepSpeed (ACCELERATE_USE_DEEPSPEED=true); "
     "xatl train runs single-process, DDP or FSDP2 (accelerate launch --multi_gpu, --use_fsdp --fsdp_version 2"),
    ({"ACCELERATE_USE_FSDP": "true"}, "accelerate is configured for FSDP version 1 (ACCELERATE_USE_FSDP is set and "
     "FSDP_VERSION is unset); xatl train shards with FSDP2 only"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "FSDP version 1"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, "sharding='fsdp' needs several processes"),
])
def test_accelerate_engines_in_the_environment(donor_dir, tmp_path, capsys, monkeypatch, env, message):
    """Checked before the Accelerator exists: DeepSpeed was an ImportError traceback, and FSDP asked for by the
    environment (accelerate ignores it under torchrun on CPUs) trained DDP."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "text.txt"
    data.write_text("some text to train on. " * 200)
    code, err = run_cli(capsys, "train", "--model", donor_dir, "--data", data, "--out", tmp_path / "run",
                        "--freeze", "none", "--no-progress")
    assert code == 2 and len(err) == 1 and err[0].startswith("xatl train: error: ") and message in err[0]
    assert not (tmp_path / "run").exists()


def test_fsdp2_in_the_environment_shards_under_torchrun(monkeypatch):
    """Under torchrun on CPUs accelerate reports MULTI_CPU even with ACCELERATE_USE_FSDP: xatl shards (FSDP2)."""
    from types import SimpleNamespace

    import accelerate
    from accelerate.utils import DistributedType

    from xatl.train import setup

    fake = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU)
    monkeypatch.setattr(accelerate, "Accelerator", lambda **kw: fake)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert setup.make_accelerator() == (fake, True)
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    assert setup.make_accelerator() == (fake, False)


@pytest.mark.parametrize("flag, value, message", [
    ("--temperature", "nan", "temperature (--temperature) must be a finite number, got nan; e.g. --temperature 0.7"),
    ("--temperature", "inf", "temperature (--temperature) must be a finite number, got inf"),
    ("--temperature", "-inf", "temperature (--temperature) must be a finite number, got -inf"),
    ("--top-p", "nan", "top_p (--top-p) must be a finite number, got nan"),
])
def test_non_finite_sampling_settings(student_dir, capsys, flag, value, message):
    code, err = run_cli(capsys, "generate", "--model", student_dir, "--prompt", "hi", f"{flag}={value}")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"xatl generate: error: {message}")
    assert capsys.readouterr().out == ""                 # nothing generated


def _stdin(data: bytes, errors: str = "surrogateescape"):
    """stdin as Python makes it (under the C locale or UTF-8 mode: undecodable bytes become lone surrogates)."""
    import io

    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors)


NOT_UTF8 = "is not UTF-8 text (byte 3: b'\\xe9'); pass UTF-8 text (convert it with iconv -t UTF-8)"


@pytest.mark.parametrize("stream", ["surrogateescape", "strict", "text only"])
def test_a_prompt_on_stdin_that_is_not_utf8(student_dir, capsys, monkeypatch, stream):
    import io

    raw = b"caf\xe9 au lait"
    text = io.StringIO(raw.decode("utf-8", "surrogateescape"))
    monkeypatch.setattr(sys, "stdin", text if stream == "text only" else _stdin(raw, stream))
    code, err = run_cli(capsys, "generate", "--model", student_dir)
    assert code == 2 and err == [f"xatl generate: error: the prompt on stdin {NOT_UTF8}"]
    assert capsys.readouterr().out == ""


def test_a_prompt_argument_that_is_not_utf8(student_dir, capsys):
    prompt = os.fsdecode(b"caf\xe9")                      # what Python makes of such a byte in argv
    code, err = run_cli(capsys, "generate", "--model", student_dir, "--prompt", prompt)
    assert code == 2 and err == [f"xatl generate: error: --prompt {NOT_UTF8}"]
    code, err = run_cli(capsys, "chat", "--model", student_dir, "--system", prompt)
    assert code == 2 and err == [f"xatl chat: error: --system {NOT_UTF8}"]


@pytest.mark.parametrize("errors", ["surrogateescape", "strict"])
def test_a_chat_message_that_is_not_utf8(student_dir, capsys, monkeypatch, errors):
    monkeypatch.setattr(sys, "stdin", _stdin(b"Hello\ncaf\xe9\nnever read\n", errors))
    code, err = run_cli(capsys, "chat", "--model", student_dir, "--max-new-tokens", "3", "--device", "cpu")
    where = "byte 3: " if errors == "surrogateescape" else "byte "
    assert code == 2 and err[-1] == ("xatl chat: error: a message on stdin is not UTF-8 text "
                                     f"({where}b'\\xe9'); pass UTF-8 text (convert it with iconv -t UTF-8)")
    assert [line for line in err if "error" in line] == err[-1:]


def test_a_full_disk_seen_by_safetensors_is_one_line(donor_dir, tmp_path, capsys, monkeypatch):
    """safetensors wraps the OS error of a failed write in its own type, which is not an OSError."""
    from safetensors import SafetensorError

    def full_disk(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                              'left on device" })')

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", full_disk)
    out = tmp_path / "s"
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", out)
    assert code == 1 and err == ["xatl convert: error: writing weights failed: No space left on device; free disk "
                                 "space or choose another --out and check the path's permissions"]
    assert not out.exists() and list(tmp_path.iterdir()) == []          # no half-written student, no temp dir

"""Inputs that used to end in a traceback, or that lost or deleted files: each is now one line, exit status != 0,
and nothing half-written or removed (the hardening issue)."""

from __future__ import annotations

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

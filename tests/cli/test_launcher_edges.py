"""Edges of the command line itself: global options before or after the command, thread counts the machine cannot
run, argparse errors that name the subcommand, and a user's XATL_LAZY_IMPORT that must not change what a plain
``import xatl`` registers."""

from __future__ import annotations

import os
import sys

import pytest
from cli_helpers import run_cli

import subproc
from xatl.errors import ConfigError


@pytest.fixture
def seen(monkeypatch):
    """What main() hands to configure_threads and allow_remote_code; the command stops right after (one line)."""
    got = {}

    def threads(value):
        got["threads"] = value
        return 1

    def remote(allowed):
        got["trust_remote_code"] = allowed
        raise ConfigError("stopped before the work")

    monkeypatch.setattr("xatl.utils.threads.configure_threads", threads)
    monkeypatch.setattr("xatl.utils.remote_code.allow_remote_code", remote)
    return got


@pytest.mark.parametrize("argv, threads, trust", [
    (["--threads", "1", "generate", "--model", "D", "--prompt", "hi"], "1", False),
    (["generate", "--model", "D", "--prompt", "hi", "--threads", "1"], "1", False),
    (["--trust-remote-code", "--threads=1", "generate", "--model", "D", "--prompt", "hi"], "1", True),
    (["--threads", "2", "generate", "--threads", "1", "--model", "D", "--prompt", "hi"], "1", False),
    (["generate", "--model", "D", "--prompt", "hi"], None, False),
])
def test_global_options_before_or_after_the_command(seen, capsys, argv, threads, trust):
    code, err = run_cli(capsys, *argv)
    assert code == 2 and err == ["xatl generate: error: stopped before the work"]
    assert seen == {"threads": threads, "trust_remote_code": trust}


def test_help_after_a_global_option(capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(capsys, "--threads", "0", "--help")
    out, err = capsys.readouterr()
    assert e.value.code == 0 and out.startswith("usage: xatl") and "--threads N" in out and err == ""


@pytest.mark.parametrize("value", ["0", "99999"])
def test_bad_thread_counts_are_refused_before_any_work(donor_dir, tmp_path, capsys, value):
    import torch

    before = torch.get_num_threads()
    out = tmp_path / "s"
    code, err = run_cli(capsys, "--threads", value, "convert", "--donor", donor_dir, "--mixer", "retention",
                        "--out", out)
    assert code == 2 and len(err) == 1 and err[0].startswith("xatl convert: error: --threads: ")
    if value == "99999":
        limit = os.cpu_count()
        assert f"at most {limit}, the logical CPUs of this machine, got 99999; pass {limit} or fewer" in err[0]
    assert not out.exists() and torch.get_num_threads() == before


def test_xatl_threads_beyond_the_machine_is_refused(donor_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XATL_THREADS", "99999")
    code, err = run_cli(capsys, "convert", "--donor", donor_dir, "--mixer", "retention", "--out", tmp_path / "s")
    assert code == 2 and len(err) == 1
    assert err[0].startswith("xatl convert: error: $XATL_THREADS: threads must be at most ")
    assert not (tmp_path / "s").exists()


def test_an_unknown_option_names_the_subcommand(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(capsys, "heal", "--donor", "smollm2-135m", "--out", tmp_path / "h", "--sharding")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[0].startswith("usage: xatl heal ")
    assert err[-1] == "xatl heal: error: unrecognized arguments: --sharding"
    assert not (tmp_path / "h").exists()


# ------------------------------------------------------------------------------------------ lazy import
REGISTERED = ("import xatl\nfrom transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
              "print('xatl' in CONFIG_MAPPING)")


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_users_lazy_import_variable_changes_nothing(value):
    env = dict(os.environ, XATL_LAZY_IMPORT=value)
    proc = subproc.run([sys.executable, "-c", REGISTERED], env=env)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]


def test_the_launcher_run_as_a_module_stays_light():
    code = ("import runpy, sys\nsys.argv = ['xatl', '--help']\ntry:\n    runpy.run_module('xatl_cli', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('torch loaded' if 'torch' in sys.modules "
            "else 'torch not loaded')")
    proc = subproc.run([sys.executable, "-c", code], env=dict(os.environ, XATL_LAZY_IMPORT="0"))
    assert proc.stdout.strip().splitlines()[-1] == "torch not loaded", proc.stderr[-2000:]
    assert "usage: xatl" in proc.stdout

"""The ``xatl`` launcher (``xatl_cli``) answers --help without importing torch, and the lazy package it sets up
still loads students: every code path that reads a student registers it with the Auto classes itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import subproc

# what the console script does, then: did torch load?
PROBE = ("import sys, xatl_cli\nsys.argv = ['xatl', *sys.argv[1:]]\n"
         "try:\n    xatl_cli.main()\nexcept SystemExit:\n    pass\nprint('torch loaded' if 'torch' in sys.modules "
         "else 'torch not loaded')")
LIGHT = ["--help", "--version", "fetch --help", "train --help", "eval --help", "heal --help", "generate --help",
         "chat --help", "profile --help", "run --help"]


def _launch(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in (env or os.environ).items() if k != "XATL_LAZY_IMPORT"}
    return subproc.run([sys.executable, "-c", PROBE, *argv], env=env)


@pytest.mark.parametrize("argv", LIGHT)
def test_help_does_not_import_torch(argv):
    proc = _launch(*argv.split())
    assert proc.stdout.strip().splitlines()[-1] == "torch not loaded", proc.stderr[-2000:]
    assert "usage: xatl" in proc.stdout or "xatl 0." in proc.stdout


def test_plain_import_still_registers_the_student():
    code = ("import xatl\nfrom transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
            "print('xatl' in CONFIG_MAPPING)")
    env = {k: v for k, v in os.environ.items() if k != "XATL_LAZY_IMPORT"}
    proc = subproc.run([sys.executable, "-c", code], env=env)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]

"""Helpers of the CLI tests: run ``xatl`` in-process and keep only its own stderr lines."""

from __future__ import annotations

from xatl.cli.main import main

NOISE = ("Loading weights", "Writing model shards")      # transformers' own progress bars


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith(NOISE)]
    return code, err

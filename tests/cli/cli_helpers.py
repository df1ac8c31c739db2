"""Helpers of the CLI tests: run ``xatl`` in-process and keep only its own stderr lines."""

from __future__ import annotations

import re

from xatl.cli.main import main

NOISE = ("Loading weights", "Writing model shards")      # transformers' own progress bars


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    # a progress bar redraws its line with \r, and one cut short by an error leaves it unfinished
    lines = re.split(r"[\r\n]+", capsys.readouterr().err)
    err = [line for line in lines if line.strip() and not line.startswith(NOISE)]
    return code, err

"""The commands under a real kill -9 at a publishing step (tests/utils/test_publishing.py kills the helper itself at
every step): what is left is refused in one line or repaired by the next run, and no good output is lost."""

from __future__ import annotations

import sys
import textwrap

import pytest
from cli_helpers import run_cli

from subproc import KILL_AT_STEP, run

CHILD = KILL_AT_STEP + textwrap.dedent("""
    from xatl.cli.main import main
    sys.exit(main(sys.argv[3:]))
""")


def killed_at(step: str, *argv, nth: int = 1) -> int:
    return run([sys.executable, "-c", CHILD, step, str(nth), *map(str, argv)]).returncode


def test_quantize_killed_while_filling_an_empty_out(student_dir, tmp_path, capsys):
    out = tmp_path / "int8"
    out.mkdir()                                           # an existing empty --out is filled in place
    argv = ["quantize", "--model", student_dir, "--out", out, "--calibration-blocks", 0]
    assert killed_at("moved", *argv, nth=3) == -9
    code, err = run_cli(capsys, "generate", "--model", out, "--prompt", "ab")
    assert code == 2 and len(err) == 1 and "is incomplete (writing it was interrupted)" in err[0], err
    code, err = run_cli(capsys, *argv)                    # the rerun clears the half-filled files and writes it
    assert code == 0, err
    code, _ = run_cli(capsys, "generate", "--model", out, "--prompt", "ab", "--max-new-tokens", 2)
    assert code == 0


@pytest.mark.parametrize("overwrite_again", [False, True])
def test_convert_killed_between_the_renames_of_overwrite(donor_dir, tmp_path, capsys, overwrite_again):
    out = tmp_path / "student"
    argv = ["convert", "--donor", donor_dir, "--mixer", "retention", "--out", out]
    assert run_cli(capsys, *argv)[0] == 0
    weights = (out / "model.safetensors").read_bytes()
    assert killed_at("old-out", *argv, "--mixer-option", "chunk_size=4", "--overwrite") == -9
    assert not out.exists()
    code, err = run_cli(capsys, "generate", "--model", out, "--prompt", "ab")
    assert code == 2 and len(err) == 1 and "interrupted --overwrite left its previous version in" in err[0], err
    code, err = run_cli(capsys, *argv, *(["--overwrite"] if overwrite_again else []))
    if overwrite_again:
        assert code == 0                                  # restored, then replaced as asked
    else:
        assert code == 2 and "already holds a model (restored from an interrupted --overwrite)" in err[0], err
        assert (out / "model.safetensors").read_bytes() == weights          # the good model is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]        # no scratch left

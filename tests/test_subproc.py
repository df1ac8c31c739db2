"""The tests' child-process runner reports what a hung child was waiting on."""

from __future__ import annotations

import sys

import pytest

import subproc


def test_a_hung_child_fails_with_its_stack():
    code = "import time\ndef waiting_here():\n    time.sleep(60)\nwaiting_here()\n"
    with pytest.raises(AssertionError, match=r"(?s)still ran after 3 s.*waiting_here"):
        subproc.run([sys.executable, "-c", code], timeout=3)


def test_a_finished_child_is_returned():
    proc = subproc.run([sys.executable, "-c", "print('ok')"])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok"

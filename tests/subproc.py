"""Child processes of the tests: a timeout that a slow machine cannot hit and a hang still does, and on a hang the
child's own stacks instead of a bare ``TimeoutExpired``.

Every child runs with ``PYTHONFAULTHANDLER=1``. At the timeout it gets SIGABRT first, so faulthandler prints every
thread's Python stack (what it waits on) before it dies; the test then fails with that stack.
"""

from __future__ import annotations

import os
import signal
import subprocess

# A correct child here takes 2-60 s alone and was seen at 18 s beside a full test run; a busy machine can make that
# several times longer. 15 minutes is far beyond any of that and still ends a real hang inside CI's budget.
TIMEOUT = 900


def run(cmd: list[str], *, env: dict | None = None, timeout: float = TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)``; a child still running after ``timeout`` seconds is
    aborted (its process group too) and the test fails with the child's stacks."""
    env = dict(os.environ if env is None else env, PYTHONFAULTHANDLER="1")
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGABRT)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                out, err = proc.communicate()
            raise AssertionError(f"{cmd[:4]} ... still ran after {timeout:.0f} s; its stacks when aborted:\n"
                                 f"{err[-6000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


KILL_AT_STEP = """
import os, signal, sys
from xatl.utils import fs
_seen = []
def _kill_at(name, step=sys.argv[1], nth=int(sys.argv[2])):
    _seen.append(name)
    if name == step and _seen.count(name) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
fs._step = _kill_at
"""
"""Child-script prelude of the crash tests: SIGKILL at the ``nth`` (argv[2]) time a publishing step named argv[1]
is reached (``xatl.utils.fs._step``); the script's own arguments start at argv[3]."""

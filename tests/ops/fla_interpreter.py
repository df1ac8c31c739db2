"""Run flash-linear-attention's Triton kernels on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``,
set by tests/conftest.py before anything imports fla), for the parity tests. Test code only.

Triton 3.7.1's interpreter needs two mends for fla-core 0.6.0's kernels, both undone on exit:

* autotuning benchmarks each config through the GPU driver ("0 active drivers"): every config is reported
  equally fast, so the first one runs;
* fla's chunk kernels call ``.to(tl.int64)`` on a loop variable, a tensor when compiled but a Python int in the
  interpreter: while a kernel runs, its ``range`` yields ints that take ``.to()``.

bf16 is wrong under the interpreter (its dot multiplies bf16 bit patterns), so the parity tests run in fp32.
"""

from __future__ import annotations

import builtins
import contextlib
import os


class _LoopInt(int):
    def to(self, *args, **kwargs):
        return self


def _range(*args):
    return (_LoopInt(i) for i in builtins.range(*(int(a) for a in args)))


@contextlib.contextmanager
def interpreted_fla():
    """fla's kernels usable on CPU tensors inside (``xatl.ops.fla_backend`` lets CPU inputs through)."""
    import pytest

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton's interpreter is off (TRITON_INTERPRET is not 1: a GPU machine runs make bench-gpu)")
    pytest.importorskip("triton")
    pytest.importorskip("fla")
    from triton.runtime import autotuner, interpreter

    from xatl.ops import fla_backend

    run = interpreter.GridExecutor.__call__

    def call(self, *args, **kwargs):
        names = self.fn.__globals__
        had, old = "range" in names, names.get("range")
        names["range"] = _range
        try:
            return run(self, *args, **kwargs)
        finally:
            if had:
                names["range"] = old
            else:
                names.pop("range", None)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(autotuner.Autotuner, "do_bench",
                   property(lambda self: (lambda fn, quantiles=None, **kw: [1.0, 1.0, 1.0])))
        mp.setattr(interpreter.GridExecutor, "__call__", call)
        mp.setattr(fla_backend, "_runs_on", lambda x: True)
        if not (fla_backend._kernels() and fla_backend._delta_kernels()):
            pytest.fail("fla is installed but its kernels did not import (see the log)")
        yield

"""CPU threads: how many torch uses, and how its OpenMP workers wait.

torch starts one OpenMP worker per core and, with ``OMP_WAIT_POLICY`` unset, idle workers *spin* before they
sleep. On a small machine shared with another busy process the spinning workers and the other process fight for
the same cores. Measured on the project's 2-core CPU (``python benchmarks/threads.py``, docs/benchmarks.md): beside
another torch job, training on 2 threads ran at 61 tokens/s with the default policy against 499 on a quiet
machine (8.2x slower), and at 212 with ``OMP_WAIT_POLICY=PASSIVE`` (1 thread: 173); on a quiet machine the two
policies are within noise (499 and 467). So ``import xatl``:

* sets ``OMP_WAIT_POLICY=PASSIVE`` (idle workers sleep) when torch is not imported yet and the user did not set it;
* and the ``xatl`` commands take ``--threads N`` (or ``$XATL_THREADS``), else torch's default (one per core).

A thread count above the machine's logical CPUs (``os.cpu_count()``) is refused: it only adds contention, and
OpenMP's thread pool crashes the process (a segfault) at counts like 99999.
"""

from __future__ import annotations

import os

ENV = "XATL_THREADS"


def prepare_openmp() -> None:
    """Before torch is imported: idle OpenMP workers sleep instead of spinning (unless OMP_WAIT_POLICY is set)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def max_threads() -> int | None:
    """The most threads xatl accepts: the machine's logical CPUs (None where Python cannot tell)."""
    return os.cpu_count()


def parse_threads(value) -> int | None:
    """``None``/``""``/``auto`` -> None (torch's default); a whole number from 1 to :func:`max_threads` -> it; else
    ValueError with the fix."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"threads must be a whole number >= 1 or 'auto', got {value!r}")
    limit = max_threads()
    if limit is not None and n > limit:
        raise ValueError(f"threads must be at most {limit}, the logical CPUs of this machine, got {n}; pass "
                         f"{limit} or fewer, or 'auto'")
    return n


def configure_threads(threads=None) -> int:
    """Use ``threads`` torch threads (None: ``$XATL_THREADS``, else torch's default) -> the number in use."""
    import torch

    n = parse_threads(threads) if threads is not None else parse_threads(os.environ.get(ENV))
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()

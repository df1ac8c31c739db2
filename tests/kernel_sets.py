"""Run the numeric tests (``-m 'numeric and not real'``: thresholds on alignment, training curves, parity, quantisation) under every
CPU kernel set this machine has, so that a threshold sitting between two machines' rounding fails here first.

torch picks its vectorised kernels by ``ATEN_CPU_CAPABILITY`` (default = no SIMD beyond SSE, avx2, avx512) and
oneDNN (matmuls, convolutions) by ``ONEDNN_MAX_CPU_ISA``; the two are set together. A capability the CPU lacks is
skipped (torch would silently fall back to its best one, which the plain run already covers). Runs:

* each capability the CPU has but the plain ``make test`` does not use, at 1 thread (as the suite runs);
* the CPU's own capability at 2 threads (reductions then split across threads: different rounding again).

    python tests/kernel_sets.py                # = make test-isa; exit 1 if any run fails
    python tests/kernel_sets.py -- -k heal     # extra pytest arguments after --

A table of the runs (capability, oneDNN ISA, threads, result, seconds) is printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ONEDNN = {"default": "SSE41", "avx2": "AVX2", "avx512": "AVX512_CORE"}
"""The oneDNN ISA cap that matches each torch capability."""
NEEDS = {"default": (), "avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq")}
"""CPU flags (/proc/cpuinfo) a capability needs."""
MARKS = "numeric and not real"
"""The tests run: the numeric ones on tiny models (the real-donor ones are covered by the plain run, and their
thresholds are far from any rounding)."""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def native_capability() -> str:
    """The capability torch picks here without ``ATEN_CPU_CAPABILITY`` (what ``make test`` runs with)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         capture_output=True, text=True, env=env, check=True)
    name = out.stdout.strip().lower()                       # DEFAULT, AVX2, AVX512 (or a later AVX512 variant)
    return "avx512" if name.startswith("avx512") else name


def plan(flags: set[str], native: str) -> list[tuple[str, str | None, int]]:
    """[(capability, oneDNN ISA or None: unset, threads)] of the runs (module docstring)."""
    have = [c for c, need in NEEDS.items() if all(f in flags for f in need)]
    runs = [(c, ONEDNN[c], 1) for c in have if c != native]
    return runs + [(native, None, 2)]


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    native = native_capability()
    runs = plan(cpu_flags(), native)
    rows = []
    for capability, isa, threads in runs:
        env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, XATL_TEST_THREADS=str(threads))
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        if isa:
            env["ONEDNN_MAX_CPU_ISA"] = isa
        print(f"== numeric tests: ATEN_CPU_CAPABILITY={capability} ONEDNN_MAX_CPU_ISA={isa or '(all)'} "
              f"threads={threads}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "pytest", "-m", MARKS, "-q", "-p", "no:cacheprovider", *extra],
                            env=env).returncode
        rows.append((capability, isa or "(all)", threads, "passed" if rc == 0 else f"FAILED (exit {rc})",
                     time.perf_counter() - t0))
    print(f"\nkernel sets (native: {native}):")
    for capability, isa, threads, result, seconds in rows:
        print(f"  ATEN_CPU_CAPABILITY={capability:<8} ONEDNN_MAX_CPU_ISA={isa:<12} threads={threads}  {result:<18} "
              f"{seconds:6.0f} s")
    return 0 if all(r[3] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

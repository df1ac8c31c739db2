"""The kernel-set runner (``make test-isa``) plans a run per capability the CPU has, and the marker reaches the
numeric tests."""

from __future__ import annotations

import kernel_sets


def test_plan_runs_every_capability_the_cpu_has_and_the_native_one_at_two_threads():
    avx512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    assert kernel_sets.plan(avx512, "avx512") == [("default", "SSE41", 1), ("avx2", "AVX2", 1), ("avx512", None, 2)]
    assert kernel_sets.plan({"avx2", "fma"}, "avx2") == [("default", "SSE41", 1), ("avx2", None, 2)]
    assert kernel_sets.plan(set(), "default") == [("default", None, 2)]


def test_numeric_marker_is_on_the_threshold_tests(pytestconfig):
    import sys

    import subproc

    out = subproc.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", kernel_sets.MARKS,
                       "-p", "no:cacheprovider", "tests/heal/test_heal_deltanet.py", "tests/cli"],
                      cwd=pytestconfig.rootpath)
    assert "test_heal_deltanet.py::test_heal_transfers_attention_into_the_delta_rule" in out.stdout
    assert "tests/cli/" not in out.stdout

"""``make bench-gpu``'s script (benchmarks/gpu.py) in its smoke mode on CPU: tiny shapes, every section, so the
prepared GPU run does not rot between the tasks that are lent a GPU. Its figures mean nothing here; what is
checked is that every item ran, wrote its fields and fed the targets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("xatl_gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_smoke_run_fills_every_section(gpu_bench, tmp_path):
    out = tmp_path / "gpu.json"
    results = gpu_bench.main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text())["smoke"] is True
    assert results["skipped"] == []
    sizes = gpu_bench.SMOKE
    for T in sizes["train_T"]:
        row = results["train"][str(T)]
        assert set(row) == {"donor", *gpu_bench.MIXERS}
        assert all(r["tokens_per_s"] > 0 for r in row.values()), row
        assert all(r["over_donor"] > 0 for name, r in row.items() if name != "donor")
    for name, rows in results["decode"].items():
        assert set(rows) == {f"b{B}/{L}" for B in sizes["batches"] for L in sizes["contexts"]}, name
        assert all(r["ms_per_token"] > 0 and r["cache_bytes"] > 0 for r in rows.values()), (name, rows)
    # the student's state does not grow with the context; the donor's KV cache does, 4x from 64 to 256 tokens
    ret, donor = results["decode"]["retention"], results["decode"]["donor"]
    assert ret["b1/64"]["cache_bytes"] == ret["b1/256"]["cache_bytes"]
    assert donor["b1/256"]["cache_bytes"] == 4 * donor["b1/64"]["cache_bytes"]
    assert all("xatl_ms" in r for r in results["kernels"].values()), results["kernels"]
    assert "skipped" in results["parity"] and "skipped" in results["compile"]      # CUDA only
    assert any(k.startswith("train T=") for k in results["targets"])
    assert any("state <= 2% of donor KV" in k for k in results["targets"])


def test_without_cuda_the_full_run_is_refused_in_one_line(gpu_bench, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        gpu_bench.main([])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no CUDA device" in err and "--smoke" in err

"""fla's kernels against xatl's PyTorch forms on a GPU (``-m cuda``; ``make test-gpu`` on a CUDA machine), in fp32
and bf16 at SmolLM2's head width (64), over several of fla's 64-token chunks: outputs, final states and every
gradient, initial state included (``xatl.ops.parity``). Skipped where there is no CUDA device or no fla; the CPU
run of the same checks is test_fla_parity.py, under Triton's interpreter.

Tolerances, relative to the largest value: 5e-3 in fp32 (fla's dots run in TF32), 5e-2 for bf16 inputs against
the fp32 reference on the same values."""

from __future__ import annotations

import pytest
import torch

from xatl.ops import fla_backend, parity

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
              pytest.mark.skipif(not (torch.cuda.is_available() and fla_backend.fla_usable(torch.ones(1, device="cuda"))
                                      and fla_backend.fla_delta_usable(torch.ones(1, device="cuda"))),
                                 reason="needs flash-linear-attention (pip install 'xatl[fla]')")]
SHAPE = dict(B=2, H=4, T=1000, K=64, V=64, device="cuda")
TOL = {torch.float32: 5e-3, torch.bfloat16: 5e-2}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("kind", list(parity.OPS))
def test_fla_matches_the_torch_form_on_cuda(kind, dtype):
    errors = parity.compare(kind, dtype=dtype, **SHAPE)
    bad = {k: e for k, e in errors.items() if e is None or e > TOL[dtype]}
    assert not bad, bad

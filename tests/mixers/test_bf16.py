"""bf16 end to end, for every mixer: training under bf16 autocast (as ``xatl train --bf16``) runs forward and
backward with finite gradients and logits close to fp32; a student with bf16 weights decodes from its cache like
its own full forward; the recurrent states stay fp32 in both (the math accumulates in them), while KV caches, windows
and conv states may be in the compute dtype. Autocast on CPU here: the dtype rules are those of CUDA."""

from __future__ import annotations

import pytest
import torch

import xatl
from tiny import VOCAB, tiny_donor
from xatl.mixers.registry import MIXERS

RECURRENT_STATES = {"kv", "k_sum", "ssm"}      # accumulated sums; conv / k / v / valid are windows of inputs


@pytest.fixture(scope="module")
def donor():
    return tiny_donor("llama")


def student(donor, mixer):
    torch.manual_seed(0)
    return xatl.XATLForCausalLM(xatl.student_config(donor.config, mixer=mixer))


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def recurrent_dtypes(cache) -> set:
    return {t.dtype for s in cache.states if s for k, t in s.items() if k in RECURRENT_STATES}


IDS = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(0))   # several 16-token chunks


@pytest.mark.parametrize("mixer", list(MIXERS))
def test_autocast_training_step(donor, mixer):
    model = student(donor, mixer)
    with torch.no_grad():
        ref = model(IDS).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(IDS, use_cache=True)
        loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), IDS[:, 1:].flatten())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert rel(out.logits, ref) < 5e-2
    assert recurrent_dtypes(out.cache) <= {torch.float32}
    if MIXERS[mixer].recurrent and mixer != "swa":
        assert recurrent_dtypes(out.cache) == {torch.float32}


@pytest.mark.parametrize("mixer", list(MIXERS))
def test_bf16_weights_decode_like_a_full_forward(donor, mixer):
    model = student(donor, mixer).to(torch.bfloat16).eval()
    with torch.no_grad():
        full = model(IDS).logits
        out = model(IDS[:, :36], use_cache=True)
        steps = [out.logits[:, -1]]
        cache = out.cache
        for t in range(36, 40):
            out = model(IDS[:, t:t + 1], cache=cache, use_cache=True)
            steps.append(out.logits[:, -1])
    assert full.dtype == torch.bfloat16
    assert rel(torch.stack(steps[:-1], 1), full[:, 35:39]) < 3e-2
    assert recurrent_dtypes(cache) <= {torch.float32}

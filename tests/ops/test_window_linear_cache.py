"""The sparse cache's decisions (``cache_schedule``): when the cache is full, the pairs the linear state already
predicts are evicted and the novel ones stay exact; it fills before anything is evicted; padding never enters; a
full cache state is refused. (The three forms agree: tests/ops/test_ops_forms.py.)"""

from __future__ import annotations

import pytest
import torch

from xatl.ops.window_linear_cache import NEVER, cache_schedule, membership


def _onehot(i: int, n: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(i), n).float()


def test_the_pair_the_state_predicts_is_evicted_and_the_novel_one_kept():
    """State holds (e0 -> a). Cache (size 1 + evict 1) holds the novel (e1 -> b). Step 0: (e0 -> a) leaves the window
    and fills the cache; the state predicts it exactly, so it is the one evicted. Step 1: (e2 -> c) leaves; of the
    unpredicted b (error 4) and c (error 9) the smaller error is evicted: b."""
    a, b, c = torch.tensor([1.0, 0, 0]), torch.tensor([0, 2.0, 0]), torch.tensor([0, 0, 3.0])
    fk = torch.stack([_onehot(1), torch.zeros(4), _onehot(0), _onehot(2)])[None, None]  # [cache (2) | leaving 0, 1]
    V = torch.stack([b, torch.zeros(3), a, c])[None, None]
    valid = torch.tensor([True, False, True, True])[None, None]
    S0 = (_onehot(0)[:, None] * a[None, :])[None, None]                             # (1, 1, F, D): e0 -> a
    estep, slots = cache_schedule(fk, V, valid, S0, _onehot(0)[None, None], None, size=1, evict=1, T=2)
    assert estep[0, 0].tolist() == [1, NEVER, 0, NEVER]
    assert slots[0, 0].tolist() in ([-1, 3], [3, -1])
    assert membership(4, 2, fk).tolist() == [-1, -1, 0, 1]


def test_the_cache_fills_before_it_evicts_and_padding_never_enters():
    fk = torch.rand(1, 2, 8, 3) + 0.1
    V = torch.randn(1, 2, 8, 4)
    valid = torch.tensor([False, False, False, True, False, True, False, False])[None, None].expand(1, 2, 8)
    S0, z0 = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3)
    estep, slots = cache_schedule(fk, V, valid, S0, z0, None, size=1, evict=2, T=5)
    assert (estep == NEVER).all()                                                  # 3 slots, 2 valid pairs
    assert sorted(slots[0, 0].tolist()) == [-1, 3, 5] and sorted(slots[0, 1].tolist()) == [-1, 3, 5]
    valid = valid.clone()
    valid[..., 6] = True                                                           # the third fills it: evict 2
    estep, slots = cache_schedule(fk, V, valid, S0, z0, None, size=1, evict=2, T=5)
    assert (estep[..., [3, 5, 6]] == 3).sum(-1).tolist() == [[2, 2]] and (estep[..., [0, 1, 2, 4, 7]] == NEVER).all()


def test_batched_eviction_keeps_the_worst_predicted():
    """Capacity 1 + 2. The state knows e0 -> a and e1 -> b; three pairs leave: (e0 -> a), (e2 -> c), (e1 -> b). When
    the cache fills, the two it predicts (a, b) are evicted together and c stays."""
    a, b, c = (torch.eye(3)[i] for i in range(3))
    fk = torch.stack([torch.zeros(4)] * 3 + [_onehot(0), _onehot(2), _onehot(1)])[None, None]
    V = torch.stack([torch.zeros(3)] * 3 + [a, c, b])[None, None]
    valid = torch.tensor([False] * 3 + [True] * 3)[None, None]
    S0 = (_onehot(0)[:, None] * a + _onehot(1)[:, None] * b)[None, None]
    estep, slots = cache_schedule(fk, V, valid, S0, (_onehot(0) + _onehot(1))[None, None], torch.tensor([-0.1]),
                                  size=1, evict=2, T=3)
    assert estep[0, 0, 3:].tolist() == [2, NEVER, 2]
    assert [s for s in slots[0, 0].tolist() if s >= 0] == [4]


def test_a_full_cache_state_is_refused():
    valid = torch.ones(1, 1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="never full"):
        cache_schedule(torch.rand(1, 1, 3, 2), torch.rand(1, 1, 3, 2), valid, torch.zeros(1, 1, 2, 2),
                       torch.zeros(1, 1, 2), None, size=1, evict=1, T=1)

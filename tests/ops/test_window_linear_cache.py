"""The sparse cache's decisions (``cache_schedule``): the pair the linear state already predicts is evicted, the
novel one stays exact; empty slots fill first; padding never enters. (Forms agree: tests/ops/test_ops_forms.py.)"""

from __future__ import annotations

import torch

from xatl.ops.window_linear_cache import cache_schedule, membership


def _onehot(i: int, n: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(i), n).float()


def test_the_pair_the_state_predicts_is_evicted_and_the_novel_one_kept():
    """State holds the pair (e0 -> a). Cache (1 slot) holds a novel pair (e1 -> b); then (e0 -> a) leaves the window:
    the state predicts it exactly, so it is the one evicted; then (e2 -> c), novel, leaves: the cached (e1 -> b) and
    (e2 -> c) are both unpredicted, the state predicts neither better, and the larger error stays."""
    a, b, c = torch.tensor([1.0, 0, 0]), torch.tensor([0, 2.0, 0]), torch.tensor([0, 0, 3.0])
    fk = torch.stack([_onehot(1), _onehot(0), _onehot(2)])[None, None]          # [cache | leaving 0 | leaving 1]
    V = torch.stack([b, a, c])[None, None]
    valid = torch.ones(1, 1, 3, dtype=torch.bool)
    S0 = _onehot(0)[:, None] * a[None, :]                                        # (F, D): e0 -> a
    z0 = _onehot(0)
    evict, slot, slots = cache_schedule(fk, V, valid, S0[None, None], z0[None, None], None, size=1, T=2)
    assert evict[0, 0].tolist() == [1, 0]        # step 0: the predicted pair itself; step 1: b (error 4 < 9)
    assert slot[0, 0].tolist() == [-1, 0]
    assert slots[0, 0, :, 0].tolist() == [0, 0, 2]
    enter, estep = membership(evict, size=1, N=3)
    assert enter[0, 0].tolist() == [-1, 0, 1] and estep[0, 0, :2].tolist() == [1, 0]


def test_empty_slots_fill_first_and_padding_never_enters():
    fk = torch.rand(1, 2, 5, 3) + 0.1
    V = torch.randn(1, 2, 5, 4)
    valid = torch.tensor([False, False, True, False, True])[None, None].expand(1, 2, 5)
    S0, z0 = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3)
    evict, slot, slots = cache_schedule(fk, V, valid, S0, z0, None, size=2, T=3)
    assert (evict == -1).all()                                                   # two slots, two valid pairs
    assert slot[0, 0].tolist() == [0, -1, 1]
    assert slots[0, 0, -1].tolist() == [2, 4]


def test_decay_weakens_the_state_prediction():
    """With the state decayed, a pair it holds is predicted no worse in direction (the normalised prediction is
    scale-free): decisions stay the same as without decay for a state holding one pair."""
    fk = torch.stack([_onehot(1), _onehot(0)])[None, None]
    V = torch.stack([torch.tensor([0, 2.0]), torch.tensor([1.0, 0])])[None, None]
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    S0 = (_onehot(0)[:, None] * torch.tensor([1.0, 0])[None])[None, None]
    evict, *_ = cache_schedule(fk, V, valid, S0, _onehot(0)[None, None], torch.tensor([-0.5]), size=1, T=1)
    assert evict[0, 0].tolist() == [1]

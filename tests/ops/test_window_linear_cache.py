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


@pytest.mark.parametrize("filled", [0, 1, 3])
def test_sinks_stay(filled):
    """Sinks alone (size = pinned, evict 1): the first pairs to leave the window fill the free sink slots and stay;
    every later one enters the linear state at the step it leaves (padding included); with LoLA's cache beside
    them the sinks are never the ones evicted."""
    g = torch.Generator().manual_seed(filled)
    size, T, B, H = 3, 9, 2, 2
    cap = size + 1
    N = cap + 4 + T
    fk, V = torch.rand(B, H, N, 3, generator=g) + 0.1, torch.randn(B, H, N, 4, generator=g)
    valid = torch.rand(B, 1, N, generator=g).expand(B, H, N) > 0.3
    valid[:, :, :cap] = False
    valid[:, :, :filled] = True                                                      # sinks already held
    S0, z0 = torch.rand(B, H, 3, 4, generator=g), torch.rand(B, H, 3, generator=g)
    for b in range(B):
        estep, slots = cache_schedule(fk[b:b + 1], V[b:b + 1], valid[b:b + 1], S0[b:b + 1], z0[b:b + 1], None,
                                      size, 1, T, pinned=size)
        steps = valid[b, 0, cap:cap + T].nonzero()[:, 0]
        kept, later = steps[:size - filled], steps[size - filled:]
        assert (estep[0, :, cap + kept] == NEVER).all() and (estep[0, :, cap + later] == later).all()
        assert (slots[0, :, :filled] == torch.arange(filled)).all()
        assert (slots[0, :, filled:filled + len(kept)] == cap + kept).all()
    estep, slots = cache_schedule(fk, V, valid, S0, z0, None, size=size + 2, evict=2, T=T, pinned=size)
    assert (slots[:, :, :filled] == torch.arange(filled)).all()                    # the held sinks never move
    assert (estep[:, :, :filled] == NEVER).all()
    with pytest.raises(ValueError, match="must fit the cache size"):
        cache_schedule(fk, V, valid, S0, z0, None, size=2, evict=1, T=T, pinned=3)


@pytest.mark.parametrize("form", ["naive", "chunked", "recurrent"])
def test_sinks_are_the_same_in_both_ops(form):
    """Sinks alone in ``window_linear`` (no schedule) and as pinned slots of the cache op (size = pinned, evict 1)
    are the same computation: equal outputs, decay, GQA, left padding and separate sink queries included."""
    from xatl.ops.window_linear import FORMS as PLAIN
    from xatl.ops.window_linear_cache import FORMS

    g = torch.Generator().manual_seed(1)
    B, H, Hkv, T, D, w, n = 2, 4, 2, 37, 8, 5, 3
    q, q_sink = torch.randn(B, H, T, D, generator=g), torch.randn(B, H, T, D, generator=g)
    k, v = torch.randn(B, Hkv, T, D, generator=g), torch.randn(B, Hkv, T, D, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, :4] = False
    W, factor = torch.randn(D, 6, generator=g), torch.rand(H, generator=g)

    def feat(x):
        return torch.softmax(x @ W, -1)

    kw = dict(key_mask=mask, log_decay=torch.tensor([0.0, -0.1, -0.5, -1.0]), **(
        dict(chunk_size=8) if form == "chunked" else {}))
    plain, _ = PLAIN[form](q, k, v, feat(q), feat, factor, w, sinks=n, q_sink=q_sink, **kw)
    cache, _ = FORMS[form](q, k, v, feat(q), feat, factor, w, n, 1, pinned=n, q_pinned=q_sink, **kw)
    torch.testing.assert_close(cache, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", ["naive", "chunked", "recurrent"])
def test_a_sink_stays_exact_however_far_back(form):
    """Token 0's key matches every query strongly (a sink, as donors' heads make one); the linear part's features
    are small. Pinned, token 0 stays in the softmax part: every later output is its value. Without sinks (the plain
    window + linear op) it goes into the linear part once it leaves the window, where its exp(20) is lost: the
    outputs are the window's values instead."""
    from xatl.ops.window_linear import FORMS as PLAIN
    from xatl.ops.window_linear_cache import FORMS

    g = torch.Generator().manual_seed(0)
    B, H, T, D, w = 1, 1, 40, 4, 3
    q = torch.ones(B, H, T, D) + 0.1 * torch.randn(B, H, T, D, generator=g)
    k = 0.1 * torch.randn(B, H, T, D, generator=g)
    k[:, :, 0] = 10.0                                                                # q . k_0 / sqrt(D) ~ 20
    v = torch.randn(B, H, T, D, generator=g)

    def feat(x):
        return 1e-4 * (torch.nn.functional.elu(x) + 1)

    kw = dict(chunk_size=8) if form == "chunked" else {}
    pinned, _ = FORMS[form](q, k, v, feat(q), feat, torch.ones(H), w, 1, 1, pinned=1, **kw)
    free, _ = PLAIN[form](q, k, v, feat(q), feat, torch.ones(H), w, **kw)
    late = slice(w + 5, T)
    assert (pinned[0, 0, late] - v[0, 0, 0]).abs().max() < 1e-3
    assert (free[0, 0, late] - v[0, 0, 0]).abs().max() > 0.5

"""A tiny student of every mixer learns a copy task on CPU within a few hundred steps (about 3-8 s each).

Task: three random symbols (of 8), a separator, the same three symbols; the loss is read on the copy only. A model
that ignores the first half can do no better than ln 8 = 2.08 nats; the test asks for less than 75% of that.
"""

from __future__ import annotations

import math

import pytest
import torch
from mixer_helpers import donor

import xatl

L, SYMBOLS, STEPS, LR, BATCH = 3, 8, 300, 5e-3, 32
CASES = {
    "linear": {}, "linear-t2r": {"feature_map": "t2r"}, "linear-hedgehog": {"feature_map": "hedgehog"},
    "retention": {}, "gla": {}, "mamba": {}, "mamba2": {}, "swa": {"window": 4},
    "lolcats": {"window": 2}, "deltanet": {}, "gated_deltanet": {},
}


def _batch(g: torch.Generator):
    a = torch.randint(10, 10 + SYMBOLS, (BATCH, L), generator=g)
    ids = torch.cat([a, torch.ones(BATCH, 1, dtype=torch.long), a], 1)          # (B, 2L + 1)
    labels = ids.clone()
    labels[:, : L + 1] = -100
    return ids, labels


@pytest.mark.parametrize("case", sorted(CASES))
def test_student_learns_to_copy(case):
    d = donor()
    mixer = case.split("-")[0]
    cfg = xatl.student_config(d.config, mixer=mixer, mixer_options=dict(CASES[case], chunk_size=8))
    student, _ = xatl.transfer(d, cfg, seed=0)
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=LR, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(STEPS):
        ids, labels = _batch(g)
        loss = student(ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert math.isfinite(last)
    assert last < 0.75 * math.log(SYMBOLS) < first, f"copy loss {first:.2f} -> {last:.2f}"

"""Attention sinks beside a sliding window (StreamingLLM, Xiao et al. 2024): the first ``sinks`` valid pairs to leave
the window stay exact for every later query, in slots that are never freed, instead of going on to whatever
summarises older pairs (the linear part of ``window_linear``).

Slots fill in order, so a state holds its sinks in slots 0..filled-1. The queries the sinks are scored against may
differ from the window's (``q_sink``): the ``lolcats`` mixer rotates them at a capped position, so that no query
meets a sink further away than the donor's context (StreamingLLM re-positions its sinks for the same reason).

Shapes: the extended keys/values of a call (B, H_kv, w + T, D), valid (B, w + T), where extended position j < T is
the pair that leaves the window at step j (``window_linear``'s layout); sink keys/values (B, H_kv, N, D), held (B, N).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class SinkSlots(NamedTuple):
    """The sinks of one call: ``keys``, ``values`` (B, H_kv, N, D); ``step`` (B, N), the first query step that sees
    each slot (-1: held by the state; j: the pair that leaves the window at step j; T: empty); ``taken`` (B, T): the
    leaving pairs that became sinks (they must stay out of the linear part)."""

    keys: torch.Tensor
    values: torch.Tensor
    step: torch.Tensor
    taken: torch.Tensor

    def final(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sinks part of the state after the call: keys, values (empty slots zero), held."""
        held = self.step < self.taken.shape[1]
        m = held[:, None, :, None].to(self.keys.dtype)
        return self.keys * m, self.values * m, held


def sink_slots(k_all: torch.Tensor, v_all: torch.Tensor, valid: torch.Tensor, T: int, sinks: int,
               state: tuple | None = None) -> SinkSlots:
    """The state's sinks, then the first valid pairs to leave the window in this call, into the free slots."""
    B, Hkv, _, D = k_all.shape
    dev, ct = k_all.device, k_all.dtype
    if state is not None:
        sk, sv, held = state[0].to(ct), state[1].to(ct), state[2].bool()
    else:
        sk, sv = k_all.new_zeros(B, Hkv, sinks, D), v_all.new_zeros(B, Hkv, sinks, v_all.shape[-1])
        held = torch.zeros(B, sinks, dtype=torch.bool, device=dev)
    filled = held.sum(1, keepdim=True)                                              # (B, 1)
    leaving = valid[:, :T]
    taken = leaving & (leaving.cumsum(1) <= sinks - filled)                          # (B, T)
    order = torch.where(taken, torch.arange(T, device=dev), T).sort(1).values       # taken steps first, then T
    order = F.pad(order, (0, sinks), value=T)[:, :sinks]                             # (B, N)
    slot = torch.arange(sinks, device=dev)[None]
    new = order.gather(1, (slot - filled).clamp(min=0))
    from_state = slot < filled
    step = torch.where(from_state, -1, new)
    idx = new.clamp(max=T - 1)[:, None, :, None]
    old = from_state[:, None, :, None]
    keys = torch.where(old, sk, k_all.gather(2, idx.expand(-1, Hkv, -1, D)))
    values = torch.where(old, sv, v_all.gather(2, idx.expand(-1, Hkv, -1, v_all.shape[-1])))
    return SinkSlots(keys, values, step, taken)


def sink_logits(q: torch.Tensor, keys: torch.Tensor, step: torch.Tensor, t: torch.Tensor, scale: float) -> torch.Tensor:
    """Scores of queries q (B, H, *Q, D) at steps t (*Q) against the sink keys (B, H_kv, N, D), -inf where a slot is
    not yet visible (step > t): (B, H, *Q, N)."""
    B, H = q.shape[:2]
    rep = H // keys.shape[1]
    s = (q.reshape(B, H, -1, q.shape[-1]) @ keys.repeat_interleave(rep, 1).transpose(-1, -2)) * scale
    s = s.view(*q.shape[:-1], keys.shape[2])
    hidden = step.view(B, 1, *([1] * t.dim()), -1) > t[..., None]
    return s.masked_fill(hidden, float("-inf"))

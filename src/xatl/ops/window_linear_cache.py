"""Sliding window + sparse cache + linear attention (LoLA, McDermott et al. 2025, on LoLCATs' window + linear
attention; the window and linear math is :mod:`xatl.ops.window_linear`'s).

Past key/value pairs that the linear state represents badly stay exact: they join the window in the softmax part.
Every pair that leaves the window enters the cache (capacity ``size + evict``); when the cache is full, its
``evict`` pairs that the linear state already predicts best move into the linear state at once, and the ``size``
worst-predicted stay. A pair's error under the state (S, z) is LoLA's self-recall error

    err(k, v) = || v - psi(k) S / (psi(k) . z) ||^2        (prediction 0 while psi(k) . z = 0)

Evicting in batches keeps the sequential part short (one decision per ``evict`` tokens, as LoLA evicts per chunk);
``evict=1`` decides at every token.

``pinned`` (attention sinks, Xiao et al. 2024): the first ``pinned`` pairs of the sequence stay in the cache for
good (counted in ``size``; they take cache slots 0..pinned-1, which are never evicted), scored against
``q_pinned`` (default q; see :mod:`xatl.ops.sinks`). Sinks without LoLA's cache run in ``window_linear``
(``sinks``), which needs no schedule; with ``size == pinned`` and ``evict == 1`` this op computes the same.

``far`` (a distance limit, as ReRoPE (Su 2023) limits its distances): a cached pair more than ``far`` steps before
query t is scored as if exactly ``far`` steps away, by ``q_far`` (the queries rotated at position ``far``) against
its linear keys ``k_lin`` (the unrotated keys): for RoPE, q_t . k_s depends on t - s only, and rot(q, far) . k =
q . rot(k, -far). So no exact pair is ever met at a distance the donor (or the healing) never saw. The sinks'
own queries (``q_pinned``) take precedence for the pinned slots.

For query t: softmax terms over its window and the cache, shifted by their joint row maximum and scaled by the
window factor f; linear terms over every evicted pair (decayed by ``log_decay`` as in ``window_linear``, from the
step it was evicted); one normalised sum.

The decisions depend only on keys, values and the state, never on queries, and they are discrete: every form takes
them from the same ``cache_schedule`` (no gradient flows through a decision; given the decisions, outputs are
exact and differentiable in all three forms).

Shapes: as ``window_linear``; the cache per query head: keys/values (B, H, size + evict, D), valid (B, H, size + evict).
State: (k, v, valid (the window), S, z (the linear state), cache_k, cache_v, cache_valid, cache_pos (B, H, size +
evict) long: each cached pair's step relative to the next call's first, -1 the last token): fixed size; with
``k_lin`` (the keys psi sees, as in ``window_linear``) also the window's and the cache's linear keys.
The "extended" sequence of a call is [cache (cap) | window (w) | new tokens (T)] per query head, N = cap + w + T,
cap = size + evict; the pair leaving the window at step t is extended position cap + t.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .sliding_window import _with_window
from .utils import scan_chunk_states
from .window_linear import _log_gamma, _scale

KFeatures = Callable[[torch.Tensor], torch.Tensor]
NEVER = 1 << 40
"""Eviction step of a pair still outside the linear state at the end of the call."""


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, H, N, E), idx (B, H, ...) in [0, N) -> (B, H, ..., E)."""
    B, H, N, E = x.shape
    flat = idx.reshape(B, H, -1)
    return x.gather(2, flat[..., None].expand(-1, -1, -1, E)).reshape(*idx.shape, E)


def extended(k, v, key_mask, initial_state, window: int, cap: int, H: int, k_features: KFeatures, k_lin=None):
    """[cache | window | new] per query head: keys, values (B, H, N, D), valid (B, H, N), psi(linear keys)
    (B, H, N, F) (zero where not valid), the window part as ``_with_window`` gives it (K/V heads): (k_all, v_all,
    valid), the extended linear keys (B, H, N, D) (None without ``k_lin``), and each pair's step relative to the
    call's first (B, H, N) long."""
    win = _with_window(k, v, key_mask, initial_state[:3] if initial_state else None, window)
    k_all, v_all, valid_all = win
    B, ct, rep = k.shape[0], k_all.dtype, H // k.shape[1]
    if initial_state:
        ck, cv, cvalid = initial_state[5].to(ct), initial_state[6].to(ct), initial_state[7].bool()
        cpos = initial_state[8].long()
    else:
        ck, cv = k_all.new_zeros(B, H, cap, k.shape[-1]), v_all.new_zeros(B, H, cap, v.shape[-1])
        cvalid = torch.zeros(B, H, cap, dtype=torch.bool, device=k.device)
        cpos = torch.zeros(B, H, cap, dtype=torch.long, device=k.device)
    steps = torch.arange(k_all.shape[2], device=k.device) - window                  # the window's, then the new
    P = torch.cat([cpos, steps.expand(B, H, -1)], 2)
    K = torch.cat([ck, k_all.repeat_interleave(rep, 1)], 2)
    V = torch.cat([cv, v_all.repeat_interleave(rep, 1)], 2)
    valid = torch.cat([cvalid, valid_all[:, None].expand(B, H, -1)], 2)
    KL = None
    if k_lin is not None:
        init = (initial_state[9], initial_state[1], initial_state[2]) if initial_state else None
        kl_all = _with_window(k_lin, v, key_mask, init, window)[0]
        ckl = initial_state[10].to(ct) if initial_state else torch.zeros_like(ck)
        KL = torch.cat([ckl, kl_all.repeat_interleave(rep, 1)], 2)
        win = win + (kl_all,)
    fk = k_features(K if KL is None else KL).to(ct) * valid[..., None].to(ct)
    return K, V, valid, fk, win, KL, P


def _linear_state(initial_state, B: int, H: int, Fd: int, Dv: int, like: torch.Tensor):
    if initial_state:
        return initial_state[3].to(like.dtype), initial_state[4].to(like.dtype)
    return like.new_zeros(B, H, Fd, Dv), like.new_zeros(B, H, Fd)


@torch.no_grad()
def cache_schedule(fk, V, valid, S0, z0, log_decay, size: int, evict: int, T: int, pinned: int = 0):
    """The eviction decisions of a call (module docstring).

    fk, V, valid: the extended sequence (B, H, N, .); S0 (B, H, F, D), z0 (B, H, F): the linear state before it.
    Returns ``estep`` (B, H, N): the step at which each extended position enters the linear state (``NEVER``:
    not in this call), and ``slots`` (B, H, size + evict): the extended position each cache slot holds after the
    last step (-1: empty); slots below ``pinned`` are never evicted. Rows are scheduled one at a time (their
    padding differs); heads at once."""
    if not 0 <= pinned <= size:
        raise ValueError(f"pinned pairs ({pinned}) must fit the cache size ({size})")
    B, H, N, Fd = fk.shape
    cap, dev = size + evict, fk.device
    estep = torch.full((B, H, N), NEVER, dtype=torch.long, device=dev)
    final = torch.empty(B, H, cap, dtype=torch.long, device=dev)
    gamma = torch.exp(log_decay.float()) if log_decay is not None else None               # (H,)
    fkf, Vf = fk.float(), V.float()
    for b in range(B):
        slots = torch.where(valid[b, :, :cap], torch.arange(cap, device=dev), -1)        # (H, cap)
        S, z = S0[b].float().clone(), z0[b].float().clone()
        steps = valid[b, 0, cap:cap + T].nonzero()[:, 0].tolist()                          # valid leaving steps
        count, i, t_ref = int((slots[0] >= 0).sum()), 0, -1
        if count >= cap:
            raise ValueError(f"a cache state holds {count} pairs, but a cache is never full between steps "
                             f"(at most size + evict - 1 = {cap - 1})")
        while True:
            need = cap - count
            take = steps[i:i + need]
            if take:                                                     # fill empty slots in slot order
                free = torch.sort((slots >= 0).int(), dim=1, stable=True).indices[:, :len(take)]
                slots.scatter_(1, free, (cap + torch.tensor(take, device=dev)).expand(H, -1))
            if len(take) < need:
                break
            i, count, t = i + need, cap, take[-1]
            if gamma is not None:                                        # the state as of step t, before evictions
                S, z = S * (gamma ** (t - t_ref))[:, None, None], z * (gamma ** (t - t_ref))[:, None]
            t_ref = t
            fc, vc = fkf[b].gather(1, slots[..., None].expand(-1, -1, Fd)), Vf[b].gather(1, slots[..., None].expand(
                -1, -1, Vf.shape[-1]))
            num, den = fc @ S, (fc * z[:, None]).sum(-1, keepdim=True)
            pred = torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))
            err = (vc - pred).square().sum(-1)
            err[:, :pinned] = float("inf")                               # sinks stay
            out = err.topk(evict, dim=1, largest=False, sorted=False).indices   # (H, G)
            x = slots.gather(1, out)
            estep[b].scatter_(1, x, t)
            fe = fkf[b].gather(1, x[..., None].expand(-1, -1, Fd))
            S = S + fe.transpose(-1, -2) @ Vf[b].gather(1, x[..., None].expand(-1, -1, Vf.shape[-1]))
            z = z + fe.sum(1)
            slots.scatter_(1, out, -1)
            count = size
        final[b] = slots
    return estep, final


def membership(N: int, cap: int, like: torch.Tensor) -> torch.Tensor:
    """The step at which each extended position leaves the window (-1 for the cache it started in): (N,)."""
    enter = torch.arange(N, device=like.device) - cap
    return torch.where(enter < 0, torch.full_like(enter, -1), enter)


def _pinned(slots: torch.Tensor, pinned: int, N: int) -> torch.Tensor:
    """(B, H, N): the extended positions that are sinks (the pinned slots after the call: sinks never leave)."""
    idx = slots[..., :pinned]
    out = torch.zeros(*slots.shape[:2], N + 1, dtype=torch.bool, device=slots.device)
    return out.scatter_(2, torch.where(idx >= 0, idx, N), True)[..., :N]


def _sink_scores(s, q_pinned, K, cached, pin, sc: float):
    """Scores s (B, H, *Q, M) against keys K (B, H, *, M, D) with the sinks' (``pin`` (B, H, *, M), where ``cached``
    (B, H, *Q, M)) scored against q_pinned (B, H, *Q, D) instead. Call it only with sink queries of their own."""
    return _rescored(s, q_pinned, K, cached & pin.unsqueeze(-2), sc)


def _rescored(s, q, K, where, sc: float):
    """Scores s (B, H, *Q, M) with the entries ``where`` (the same shape) replaced by q (B, H, *Q, D) against keys
    K (B, H, *, M, D): the one rule behind the sinks' and the far pairs' own queries."""
    return torch.where(where, (q.to(K.dtype) @ K.transpose(-1, -2)) * sc, s)


def _far_scores(s, q_far, KL, dist, cached, far: int, sc: float):
    """Scores s (B, H, *Q, M) with the cached pairs more than ``far`` steps back (``dist`` (B, H, *Q, M) the query's
    step minus the pair's, where ``cached``) scored by q_far (B, H, *Q, D) against their linear keys KL (B, H, *, M,
    D) instead (module docstring). Call it only with far queries of their own."""
    if KL is None:
        raise ValueError("far pairs are scored against their linear keys: pass k_lin (the unrotated keys)")
    return _rescored(s, q_far, KL, cached & (dist > far), sc)


def _final_cache(K, V, slots, KL, win, w: int, P, T: int):
    """The cache part of the final state, and with linear keys (``KL``) the window's and the cache's linear keys."""
    ok = slots >= 0
    idx = slots.clamp(min=0)
    pos = torch.where(ok, P.gather(2, idx) - T, 0)
    out = (_gather(K, idx) * ok[..., None], _gather(V, idx) * ok[..., None], ok, pos)
    if KL is not None:
        out = out + (win[3][:, :, -w:], _gather(KL, idx) * ok[..., None])
    return out


def _final_state(K, V, fk, win, estep, slots, S0, z0, g, T: int, w: int, P, KL=None):
    """The state after the call: window, linear state (every pair evicted in the call, decayed from its step), cache."""
    done = (estep < T).to(K.dtype) * torch.exp(g[None, :, None] * (T - 1 - estep.clamp(max=T - 1)).to(K.dtype))
    fkd = fk * done[..., None]
    over_all = torch.exp(g * T)                                                       # (H,)
    k_all, v_all, valid_all = win[:3]
    return (k_all[:, :, -w:], v_all[:, :, -w:], valid_all[:, -w:], S0 * over_all[:, None, None] + fkd.transpose(-1, -2) @ V,
            z0 * over_all[:, None] + fkd.sum(2), *_final_cache(K, V, slots, KL, win, w, P, T))


def _prepare(q, k, v, fq, k_features, w: int, size: int, evict: int, key_mask, initial_state, log_decay, k_lin,
             pinned: int = 0):
    """What every form starts from: the extended sequence, the linear state before the call, the schedule and the
    step each extended position leaves the window and its step: (K, V, valid, fk, win, KL, S0, z0, estep, slots,
    enter, P)."""
    B, H = q.shape[:2]
    cap = size + evict
    K, V, valid, fk, win, KL, P = extended(k, v, key_mask, initial_state, w, cap, H, k_features, k_lin)
    S0, z0 = _linear_state(initial_state, B, H, fq.shape[-1], v.shape[-1], K)
    estep, slots = cache_schedule(fk, V, valid, S0, z0, log_decay, size, evict, q.shape[2], pinned)
    return K, V, valid, fk, win, KL, S0, z0, estep, slots, membership(K.shape[2], cap, K), P


def naive_window_linear_cache(q, k, v, fq, k_features: KFeatures, factor, window: int, size: int, evict: int = 1,
                              scale: float | None = None, key_mask=None, initial_state=None,
                              output_final_state: bool = False, log_decay=None, k_lin=None, pinned: int = 0,
                              q_pinned=None, far: int = 0, q_far=None):
    """Reference: (T, N) masks of the window, the cache and the linear state, from the schedule."""
    dtype, (_, H, T, D) = v.dtype, q.shape
    w, cap = window, size + evict
    K, V, valid, fk, win, KL, S0, z0, estep, slots, enter, P = _prepare(q, k, v, fq, k_features, w, size, evict,
                                                                      key_mask, initial_state, log_decay, k_lin, pinned)
    ct, N = K.dtype, K.shape[2]
    t = torch.arange(T, device=q.device)[:, None]
    x = torch.arange(N, device=q.device)[None, :]
    vis = valid[:, :, None, :]
    in_win = ((x > cap + t) & (x <= cap + w + t) & vis) | (x == cap + w + t)
    in_cache = vis & (enter <= t) & (t < estep[:, :, None])
    in_lin = estep[:, :, None] <= t                                                  # (B, H, T, N)
    s = (q.to(ct) @ K.transpose(-1, -2)) * _scale(scale, D)
    if q_far is not None:
        s = _far_scores(s, q_far, KL, t - P[:, :, None, :], in_cache, far, _scale(scale, D))
    if q_pinned is not None:
        s = _sink_scores(s, q_pinned, K, in_cache, _pinned(slots, pinned, N), _scale(scale, D))
    s = s.masked_fill(~(in_win | in_cache), float("-inf"))
    a = factor.to(ct)[None, :, None, None] * torch.exp(s - s.amax(-1, keepdim=True))
    g = _log_gamma(log_decay, H, K)
    age = (t - estep[:, :, None].clamp(max=T)).clamp(min=0).to(ct)
    b = (fq.to(ct) @ fk.transpose(-1, -2)) * in_lin * torch.exp(g[None, :, None, None] * age)
    from_state = torch.exp(g[None, :, None, None] * (t + 1).to(ct))                  # (1, H, T, 1)
    num = (a + b) @ V + (fq.to(ct) @ S0) * from_state
    den = (a + b).sum(-1, keepdim=True) + (fq.to(ct) @ z0[..., None]) * from_state
    final = _final_state(K, V, fk, win, estep, slots, S0, z0, g, T, w, P, KL) if output_final_state else None
    return (num / den).to(dtype), final


def _select(mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of up to ``k`` True entries of ``mask`` (..., N) along the last dim, and which of them are real."""
    k = min(k, mask.shape[-1])
    idx = mask.float().topk(k, dim=-1, sorted=False).indices
    return idx, mask.gather(-1, idx)


def chunk_window_linear_cache(q, k, v, fq, k_features: KFeatures, factor, window: int, size: int, evict: int = 1,
                              scale: float | None = None, key_mask=None, initial_state=None,
                              output_final_state: bool = False, chunk_size: int = 64, log_decay=None, k_lin=None,
                              pinned: int = 0, q_pinned=None, far: int = 0, q_far=None):
    """Chunked: per query chunk of C, the (w + C - 1)-key window strip, the at most size + evict + C pairs that can
    be cached during it, and for the linear part the state at the chunk's start plus the at most C + evict pairs
    evicted during it."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    C, w, cap = chunk_size, window, size + evict
    K, V, valid, fk, win, KL, S0, z0, estep, slots, enter, P = _prepare(q, k, v, fq, k_features, w, size, evict,
                                                                      key_mask, initial_state, log_decay, k_lin, pinned)
    ct, Dv = K.dtype, v.shape[-1]
    n, sc = -(-T // C), _scale(scale, D)
    pad = n * C - T
    qc = F.pad(q.to(ct), (0, 0, 0, pad)).view(B, H, n, C, D)
    fqc = F.pad(fq.to(ct), (0, 0, 0, pad)).view(B, H, n, C, -1)
    t = torch.arange(n * C, device=q.device).view(n, C)                               # query step of each row
    first, last = t[:, :1], t[:, -1:]                                                 # (n, 1)
    # --- window strips (extended positions cap + t - w + 1 .. cap + t)
    Sw = w + C - 1
    Kw, Vw = (F.pad(x[:, :, cap + 1:], (0, 0, 0, pad)).unfold(2, Sw, C).transpose(-1, -2) for x in (K, V))
    vw = F.pad(valid[:, :, cap + 1:], (0, pad)).unfold(2, Sw, C)                    # (B, H, n, Sw)
    i = torch.arange(C, device=q.device)[:, None]
    o_ = torch.arange(Sw, device=q.device)[None, :]
    allowed = ((o_ >= i) & (o_ <= i + w - 1) & vw[:, :, :, None, :]) | (o_ == i + w - 1)     # (B, H, n, C, Sw)
    s_w = ((qc @ Kw.transpose(-1, -2)) * sc).masked_fill(~allowed, float("-inf"))
    # --- cache: pairs that have left the window by the chunk's end and are not evicted before its start
    es = estep[:, :, None, :]                                                        # (B, H, 1, N)
    maybe = valid[:, :, None, :] & (enter <= last) & (es > first)                     # (B, H, n, N)
    cand, ok = _select(maybe, cap + C)
    ce, cs = enter[cand], estep.gather(-1, cand.flatten(2)).view_as(cand)             # (B, H, n, M)
    tq = t[None, None, :, :, None]
    cached = ok[..., None, :] & (ce[..., None, :] <= tq) & (tq < cs[..., None, :])       # (B, H, n, C, M)
    Kc = _gather(K, cand)                                                             # (B, H, n, M, D)
    s_c = (qc @ Kc.transpose(-1, -2)) * sc
    if q_far is not None:
        qfc = F.pad(q_far.to(ct), (0, 0, 0, pad)).view(B, H, n, C, D)
        dist = tq - P.gather(-1, cand.flatten(2)).view_as(cand)[..., None, :]
        s_c = _far_scores(s_c, qfc, _gather(KL, cand) if KL is not None else None, dist, cached, far, sc)
    if q_pinned is not None:
        qpc = F.pad(q_pinned.to(ct), (0, 0, 0, pad)).view(B, H, n, C, D)
        pin = _pinned(slots, pinned, K.shape[2]).gather(-1, cand.flatten(2)).view_as(cand)
        s_c = _sink_scores(s_c, qpc, Kc, cached, pin & ok, sc)
    s_c = s_c.masked_fill(~cached, float("-inf"))
    m = torch.maximum(s_w.amax(-1, keepdim=True), s_c.amax(-1, keepdim=True))
    f = factor.to(ct)[None, :, None, None, None]
    a_w, a_c = f * torch.exp(s_w - m), f * torch.exp(s_c - m)
    V1 = torch.cat([V, torch.ones_like(V[..., :1])], -1)                              # ones column: denominator
    sm = torch.cat([a_w @ Vw, a_w.sum(-1, keepdim=True)], -1) + a_c @ _gather(V1, cand)
    # --- linear part: pairs evicted during the chunk (exactly), the state at its start (decayed)
    g = _log_gamma(log_decay, H, K)
    gh = g[None, :, None, None]
    lost = (es >= first) & (es <= last)                                               # (B, H, n, N)
    ev, ev_ok = _select(lost, C + evict)
    ee = estep.gather(-1, ev.flatten(2)).view_as(ev)                                  # (B, H, n, L)
    fe, V1e = _gather(fk, ev) * ev_ok[..., None], _gather(V1, ev) * ev_ok[..., None]
    age = (tq - ee[..., None, :].clamp(max=n * C)).to(ct)                             # (B, H, n, C, L)
    seen = ev_ok[..., None, :] & (age >= 0)
    intra = ((fqc @ fe.transpose(-1, -2)) * seen * torch.exp(gh[..., None] * age.clamp(min=0))) @ V1e
    to_end = torch.exp(gh * (last[None, None] - ee.clamp(max=n * C)).clamp(min=0).to(ct))     # (B, H, n, L)
    U = (fe * to_end[..., None]).transpose(-1, -2) @ V1e                              # (B, H, n, F, D + 1)
    S0_aug = torch.cat([S0, z0[..., None]], -1)
    states, end = scan_chunk_states(U, (gh * C).expand(B, H, n, 1), S0_aug)
    inter = (fqc * torch.exp(gh[..., None] * (i + 1).to(ct))) @ states                  # decayed from chunk start
    o = sm.reshape(B, H, n * C, Dv + 1)[:, :, :T] + (intra + inter).reshape(B, H, n * C, Dv + 1)[:, :, :T]
    final = _final_state(K, V, fk, win, estep, slots, S0, z0, g, T, w, P, KL) if output_final_state else None
    return (o[..., :Dv] / o[..., Dv:]).to(dtype), final


def recurrent_window_linear_cache(q, k, v, fq, k_features: KFeatures, factor, window: int, size: int,
                                  evict: int = 1, scale: float | None = None, key_mask=None, initial_state=None,
                                  output_final_state: bool = False, log_decay=None, k_lin=None, pinned: int = 0,
                                  q_pinned=None, far: int = 0, q_far=None):
    """Token by token (decoding): decay the linear state, add the pairs evicted at this step, then one normalised
    sum over the window, the cache (pairs that have left the window and are not evicted) and the linear state."""
    dtype, (_, H, T, D) = v.dtype, q.shape
    w, cap = window, size + evict
    K, V, valid, fk, win, KL, S, z, estep, slots, enter, P = _prepare(q, k, v, fq, k_features, w, size, evict,
                                                                    key_mask, initial_state, log_decay, k_lin, pinned)
    ct, N = K.dtype, K.shape[2]
    g = _log_gamma(log_decay, H, K)
    gamma = torch.exp(g)[None, :]                                                     # (1, H)
    f, sc = factor.to(ct)[None, :, None, None], _scale(scale, D)
    x = torch.arange(N, device=q.device)
    pin = _pinned(slots, pinned, N) if q_pinned is not None else None
    outs = []
    for t in range(T):
        now = (estep == t).to(ct)[..., None]                                          # (B, H, N, 1)
        S = S * gamma[..., None, None] + (fk * now).transpose(-1, -2) @ V
        z = z * gamma[..., None] + (fk * now).sum(2)
        see = ((x > cap + t) & (x <= cap + w + t) & valid) | (x == cap + w + t)
        held = valid & (enter <= t) & (t < estep)                                     # (B, H, N): the cache
        s = (q[:, :, t:t + 1].to(ct) @ K.transpose(-1, -2)) * sc                       # (B, H, 1, N)
        if q_far is not None:
            s = _far_scores(s, q_far[:, :, t:t + 1], KL, (t - P)[:, :, None], held[:, :, None], far, sc)
        if q_pinned is not None:
            s = _sink_scores(s, q_pinned[:, :, t:t + 1], K, held[:, :, None], pin, sc)
        s = s.masked_fill(~(see | held)[:, :, None], float("-inf"))
        a = f * torch.exp(s - s.amax(-1, keepdim=True))
        fqt = fq[:, :, t:t + 1].to(ct)
        outs.append((a @ V + fqt @ S) / (a.sum(-1, keepdim=True) + fqt @ z[..., None]))
    final = None
    if output_final_state:
        k_all, v_all, valid_all = win[:3]
        final = (k_all[:, :, -w:], v_all[:, :, -w:], valid_all[:, -w:], S, z,
                 *_final_cache(K, V, slots, KL, win, w, P, T))
    return torch.cat(outs, 2).to(dtype), final


FORMS = {"naive": naive_window_linear_cache, "chunked": chunk_window_linear_cache,
         "recurrent": recurrent_window_linear_cache}

"""Sliding window + sparse cache + linear attention (LoLA, McDermott et al. 2025, on LoLCATs' window + linear
attention; the window and linear math is :mod:`xatl.ops.window_linear`'s).

A fixed number ``size`` of past key/value pairs, the ones the linear state represents worst, stay exact: they join
the window in the softmax part. Each step, the key/value pair leaving the window joins the cache; when the cache is
full, of its ``size + 1`` candidates the one the linear state already predicts best is evicted into the linear
state. A candidate's error under the state (S, z) is LoLA's self-recall error

    err(k, v) = || v - psi(k) S / (psi(k) . z) ||^2        (prediction 0 while psi(k) . z = 0)

For query t: softmax terms over its window and the cache, shifted by their joint row maximum and scaled by the
window factor f; linear terms over every evicted pair (decayed by ``log_decay`` as in ``window_linear``); one
normalised sum.

The eviction decisions depend only on keys, values and the state, never on queries, and they are discrete: every
form computes them with the same sequential ``cache_schedule`` (no gradients flow through a decision; given the
decisions, outputs are exact and differentiable in all three forms).

Shapes: as ``window_linear``; cache keys/values per query head (B, H, size, D), ``cache_valid`` (B, H, size).
State: (k, v, valid (the window), S, z (the linear state), cache_k, cache_v, cache_valid): fixed size.
The "extended" sequence of a call is [cache (size) | window (w) | new tokens (T)] per query head, N = size + w + T;
the pair leaving the window at step t is extended position size + t.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .linear_attention import chunk_linear_attn
from .retention import chunk_retention
from .sliding_window import _with_window

KFeatures = Callable[[torch.Tensor], torch.Tensor]
NEVER = torch.iinfo(torch.long).max // 4
"""Eviction step of a pair still outside the linear state at the end of the call."""


def _scale(scale: float | None, D: int) -> float:
    return scale if scale is not None else D**-0.5


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, H, N, E), idx (B, H, ...) in [0, N) -> (B, H, ..., E)."""
    B, H, N, E = x.shape
    flat = idx.reshape(B, H, -1)
    return x.gather(2, flat[..., None].expand(-1, -1, -1, E)).reshape(*idx.shape, E)


def extended(k, v, key_mask, initial_state, window: int, size: int, H: int, k_features: KFeatures):
    """[cache | window | new] per query head: keys, values (B, H, N, D), valid (B, H, N), psi(keys) (B, H, N, F),
    and the window part alone as ``_with_window`` gives it (K/V heads): (k_all, v_all, valid_all)."""
    win = _with_window(k, v, key_mask, initial_state[:3] if initial_state else None, window)
    k_all, v_all, valid_all = win
    B, ct, rep = k.shape[0], k_all.dtype, H // k.shape[1]
    if initial_state:
        ck, cv, cvalid = (initial_state[5].to(ct), initial_state[6].to(ct), initial_state[7].bool())
    else:
        ck = k_all.new_zeros(B, H, size, k.shape[-1])
        cv = v_all.new_zeros(B, H, size, v.shape[-1])
        cvalid = torch.zeros(B, H, size, dtype=torch.bool, device=k.device)
    K = torch.cat([ck, k_all.repeat_interleave(rep, 1)], 2)
    V = torch.cat([cv, v_all.repeat_interleave(rep, 1)], 2)
    valid = torch.cat([cvalid, valid_all[:, None].expand(B, H, -1)], 2)
    fk = k_features(K).to(ct) * valid[..., None].to(ct)
    return K, V, valid, fk, win


@torch.no_grad()
def cache_schedule(fk, V, valid, S0, z0, log_decay, size: int, T: int):
    """The eviction decisions of T steps (module docstring).

    fk, V, valid: the extended sequence (B, H, N, .); S0 (B, H, F, D), z0 (B, H, F): the linear state before the
    call. Returns ``evict`` (B, H, T): the extended position that enters the linear state at step t (-1: none),
    ``slot`` (B, H, T): the cache slot the leaving pair takes at step t (-1: none), ``slots`` (B, H, T + 1, size):
    the extended position each slot holds before step t (and after the last step; -1: empty)."""
    B, H, N, Fd = fk.shape
    dev = fk.device
    pos = torch.arange(size, device=dev)
    cur = torch.where(valid[..., :size], pos, torch.full_like(pos, -1)).expand(B, H, size).clone()
    S, z = S0.float().clone(), z0.float().clone()
    gamma = torch.exp(log_decay.float())[None, :] if log_decay is not None else None        # (1, H)
    evict = torch.full((B, H, T), -1, dtype=torch.long, device=dev)
    slot = torch.full((B, H, T), -1, dtype=torch.long, device=dev)
    hist = [cur.clone()]
    fkf, Vf = fk.float(), V.float()
    for t in range(T):
        x = size + t
        if gamma is not None:
            S, z = S * gamma[..., None, None], z * gamma[..., None]
        leaving = valid[..., x]                                                        # (B, H)
        empty = cur < 0
        has_empty = empty.any(-1)
        cand = torch.cat([cur, torch.full_like(cur[..., :1], x)], -1)                 # (B, H, size + 1)
        fkc, vc = _gather(fkf, cand.clamp(min=0)), _gather(Vf, cand.clamp(min=0))
        num, den = fkc @ S, (fkc * z[:, :, None]).sum(-1, keepdim=True)
        pred = torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))
        err = (vc - pred).square().sum(-1)                                             # (B, H, size + 1)
        worst_fit = err.argmin(-1)                                                     # evicted when full
        into = torch.where(has_empty, empty.float().argmax(-1), worst_fit)             # (B, H): slot or `size`
        goes = leaving & ~has_empty                                                    # someone is evicted
        ev = cand.gather(-1, into.clamp(max=size)[..., None])[..., 0]
        ev = torch.where(goes, ev, torch.full_like(ev, -1))
        takes = leaving & (into < size)                                                # the leaving pair is cached
        evict[..., t] = ev
        slot[..., t] = torch.where(takes, into, torch.full_like(into, -1))
        if goes.any():
            e = ev.clamp(min=0)
            fe = _gather(fkf, e[..., None])[..., 0, :] * goes[..., None]                  # (B, H, F)
            S = S + fe[..., :, None] * _gather(Vf, e[..., None])[..., 0, None, :]
            z = z + fe
        upd = torch.zeros_like(cur, dtype=torch.bool).scatter_(-1, into.clamp(max=size - 1)[..., None],
                                                              takes[..., None])
        cur = torch.where(upd, torch.full_like(cur, x), cur)
        hist.append(cur.clone())
    return evict, slot, torch.stack(hist, 2)


def membership(evict: torch.Tensor, size: int, N: int):
    """Per extended position: the step it leaves the window (``enter``; -1 for the cache it started in) and the step
    it enters the linear state (``NEVER`` if not in this call): (B, H, N) each."""
    B, H, T = evict.shape
    dev = evict.device
    enter = (torch.arange(N, device=dev) - size).expand(B, H, N)
    enter = torch.where(enter < 0, torch.full_like(enter, -1), enter)
    steps = torch.arange(T, device=dev).expand(B, H, T)
    estep = torch.full((B, H, N + 1), NEVER, dtype=torch.long, device=dev)
    estep.scatter_(-1, torch.where(evict >= 0, evict, torch.full_like(evict, N)), steps)
    return enter, estep[..., :N]


def _final_cache(K, V, slots_end):
    ok = slots_end >= 0
    idx = slots_end.clamp(min=0)
    return _gather(K, idx) * ok[..., None], _gather(V, idx) * ok[..., None], ok


def _decays(log_decay, H: int, like: torch.Tensor):
    """log(gamma) (H,) in the accumulation dtype (zeros without decay)."""
    return (log_decay if log_decay is not None else like.new_zeros(H)).to(like.dtype)


def naive_window_linear_cache(q, k, v, fq, k_features: KFeatures, factor, window: int, size: int,
                              scale: float | None = None, key_mask=None, initial_state=None,
                              output_final_state: bool = False, log_decay=None):
    """Reference: (T, N) masks of the window, the cache and the linear state, from the schedule."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    w = window
    K, V, valid, fk, win = extended(k, v, key_mask, initial_state, w, size, H, k_features)
    ct, N = K.dtype, K.shape[2]
    S0, z0 = (initial_state[3].to(ct), initial_state[4].to(ct)) if initial_state else (
        K.new_zeros(B, H, fq.shape[-1], v.shape[-1]), K.new_zeros(B, H, fq.shape[-1]))
    evict, _, slots = cache_schedule(fk, V, valid, S0, z0, log_decay, size, T)
    enter, estep = membership(evict, size, N)
    t = torch.arange(T, device=q.device)[:, None]
    x = torch.arange(N, device=q.device)[None, :]
    vis = valid[:, :, None, :]
    in_win = ((x > size + t) & (x <= size + w + t) & vis) | (x == size + w + t)
    in_cache = vis & (enter[:, :, None] <= t) & (t < estep[:, :, None])
    in_lin = estep[:, :, None] <= t                                                  # (B, H, T, N)
    s = (q.to(ct) @ K.transpose(-1, -2)) * _scale(scale, D)
    s = s.masked_fill(~(in_win | in_cache), float("-inf"))
    a = factor.to(ct)[None, :, None, None] * torch.exp(s - s.amax(-1, keepdim=True))
    g = _decays(log_decay, H, K)[None, :, None, None]
    age = (t - estep[:, :, None].clamp(max=T)).clamp(min=0).to(ct)
    b = (fq.to(ct) @ fk.transpose(-1, -2)) * in_lin * torch.exp(g * age)
    from_state = torch.exp(g * (t + 1).to(ct))                                       # (1, H, T, 1)
    num = (a + b) @ V + (fq.to(ct) @ S0) * from_state
    den = (a + b).sum(-1, keepdim=True) + (fq.to(ct) @ z0[..., None]) * from_state
    o = num / den
    final = None
    if output_final_state:
        done = (estep < T).to(ct) * torch.exp(g[..., 0, 0, None] * (T - 1 - estep.clamp(max=T - 1)).to(ct))
        fkd = fk * done[..., None]
        over_all = torch.exp(g[0, :, 0, 0] * T)                                      # (H,)
        k_all, v_all, valid_all = win
        final = (k_all[:, :, -w:], v_all[:, :, -w:], valid_all[:, -w:],
                 S0 * over_all[:, None, None] + fkd.transpose(-1, -2) @ V, z0 * over_all[:, None] + fkd.sum(2),
                 *_final_cache(K, V, slots[:, :, -1]))
    return o.to(dtype), final


def chunk_window_linear_cache(q, k, v, fq, k_features: KFeatures, factor, window: int, size: int,
                              scale: float | None = None, key_mask=None, initial_state=None,
                              output_final_state: bool = False, chunk_size: int = 64, log_decay=None):
    """Chunked: per query chunk, the (w + C - 1)-key window strip and the size + C keys that can be cached during
    the chunk (its starting cache and the pairs leaving the window in it); the linear part as chunked linear
    attention (or retention, with decay) over the evicted pairs in eviction order."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    C, w = chunk_size, window
    K, V, valid, fk, win = extended(k, v, key_mask, initial_state, w, size, H, k_features)
    ct, N, Dv = K.dtype, K.shape[2], v.shape[-1]
    S0, z0 = (initial_state[3].to(ct), initial_state[4].to(ct)) if initial_state else (
        K.new_zeros(B, H, fq.shape[-1], Dv), K.new_zeros(B, H, fq.shape[-1]))
    evict, _, slots = cache_schedule(fk, V, valid, S0, z0, log_decay, size, T)
    enter, estep = membership(evict, size, N)
    n, sc = -(-T // C), _scale(scale, D)
    pad = n * C - T
    qc = F.pad(q.to(ct), (0, 0, 0, pad)).view(B, H, n, C, D)
    t = torch.arange(n * C, device=q.device).view(n, C)                               # query step of each row
    # --- window strips (positions size + t - w + 1 .. size + t of the extended sequence)
    Sw = w + C - 1
    Kw, Vw = (F.pad(x[:, :, size + 1:], (0, 0, 0, pad)).unfold(2, Sw, C).transpose(-1, -2) for x in (K, V))
    vw = F.pad(valid[:, :, size + 1:], (0, pad)).unfold(2, Sw, C)                  # (B, H, n, Sw)
    i = torch.arange(C, device=q.device)[:, None]
    o_ = torch.arange(Sw, device=q.device)[None, :]
    allowed = ((o_ >= i) & (o_ <= i + w - 1) & vw[:, :, :, None, :]) | (o_ == i + w - 1)     # (B, H, n, C, Sw)
    s_w = ((qc @ Kw.transpose(-1, -2)) * sc).masked_fill(~allowed, float("-inf"))
    # --- cache candidates: the cache at the chunk's start, then the pairs leaving the window during the chunk
    start = slots[:, :, :-1][:, :, ::C][:, :, :n]                                     # (B, H, n, size)
    leaving = (size + t).clamp(max=N - 1).expand(B, H, n, C)
    cand = torch.cat([start.clamp(min=0), leaving], -1)                              # (B, H, n, size + C)
    ok = torch.cat([start >= 0, (t < T).expand(B, H, n, C)], -1) & valid.gather(-1, cand.flatten(2)).view_as(cand)
    ce, cs = enter.gather(-1, cand.flatten(2)).view_as(cand), estep.gather(-1, cand.flatten(2)).view_as(cand)
    tq = t[None, None, :, :, None]
    cached = ok[..., None, :] & (ce[..., None, :] <= tq) & (tq < cs[..., None, :])       # (B, H, n, C, size + C)
    Kc, Vc = _gather(K, cand), _gather(V, cand)                                      # (B, H, n, size + C, D)
    s_c = ((qc @ Kc.transpose(-1, -2)) * sc).masked_fill(~cached, float("-inf"))
    m = torch.maximum(s_w.amax(-1, keepdim=True), s_c.amax(-1, keepdim=True))
    f = factor.to(ct)[None, :, None, None, None]
    a_w, a_c = f * torch.exp(s_w - m), f * torch.exp(s_c - m)
    num_sm = (a_w @ Vw + a_c @ Vc).reshape(B, H, n * C, Dv)[:, :, :T]
    den_sm = (a_w.sum(-1) + a_c.sum(-1)).reshape(B, H, n * C)[:, :, :T, None]
    # --- linear part: at step t the evicted pair (if any) enters the state
    goes = (evict >= 0)[..., None].to(ct)
    fe, ve = _gather(fk, evict.clamp(min=0)) * goes, _gather(V, evict.clamp(min=0)) * goes
    v_aug = torch.cat([ve, torch.ones_like(ve[..., :1]) * goes], -1)
    S0_aug = torch.cat([S0, z0[..., None]], -1)
    if log_decay is None:
        lin, lin_final = chunk_linear_attn(fq.to(ct), fe, v_aug, initial_state=(S0_aug, z0),
                                           output_final_state=output_final_state, normalize=False, chunk_size=C)
        lin_final = lin_final[0] if output_final_state else None
    else:
        lin, lin_final = chunk_retention(fq.to(ct), fe, v_aug, log_decay, initial_state=S0_aug,
                                         output_final_state=output_final_state, chunk_size=C)
    o = (num_sm + lin[..., :Dv]) / (den_sm + lin[..., Dv:])
    final = None
    if output_final_state:
        k_all, v_all, valid_all = win
        final = (k_all[:, :, -w:], v_all[:, :, -w:], valid_all[:, -w:], lin_final[..., :Dv], lin_final[..., Dv],
                 *_final_cache(K, V, slots[:, :, -1]))
    return o.to(dtype), final


def recurrent_window_linear_cache(q, k, v, fq, k_features: KFeatures, factor, window: int, size: int,
                                  scale: float | None = None, key_mask=None, initial_state=None,
                                  output_final_state: bool = False, log_decay=None):
    """Token by token (decoding): apply step t's decision (evict into the state, cache the leaving pair), move the
    new token into the window, then one normalised sum over window, cache and linear state."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    w = window
    K, V, valid, fk, win = extended(k, v, key_mask, initial_state, w, size, H, k_features)
    ct = K.dtype
    S, z = (initial_state[3].to(ct), initial_state[4].to(ct)) if initial_state else (
        K.new_zeros(B, H, fq.shape[-1], v.shape[-1]), K.new_zeros(B, H, fq.shape[-1]))
    evict, slot, _ = cache_schedule(fk, V, valid, S, z, log_decay, size, T)
    ck, cv, cvalid = K[:, :, :size], V[:, :, :size], valid[:, :, :size]
    g = torch.exp(_decays(log_decay, H, K))[None, :, None]                           # (1, H, 1)
    f, sc = factor.to(ct)[None, :, None, None], _scale(scale, D)
    sl = slice(size, size + w)                                                       # the window before step 0
    kw, vw, vwin = K[:, :, sl], V[:, :, sl], valid[:, :, sl]
    outs = []
    for t in range(T):
        S, z = S * g[..., None], z * g
        goes = (evict[..., t] >= 0)[..., None].to(ct)
        e = evict[..., t].clamp(min=0)[..., None]
        fe = _gather(fk, e)[..., 0, :] * goes                                        # (B, H, F)
        S = S + fe[..., :, None] * (_gather(V, e)[..., 0, None, :] * goes[..., None])
        z = z + fe
        s_t = slot[..., t]
        put = torch.zeros_like(cvalid).scatter_(-1, s_t.clamp(min=0)[..., None], (s_t >= 0)[..., None])
        ck = torch.where(put[..., None], kw[:, :, :1], ck)                            # the leaving pair: oldest slot
        cv = torch.where(put[..., None], vw[:, :, :1], cv)
        cvalid = cvalid | put
        x = size + w + t                                                             # the new token
        kw, vw = torch.cat([kw[:, :, 1:], K[:, :, x:x + 1]], 2), torch.cat([vw[:, :, 1:], V[:, :, x:x + 1]], 2)
        vwin = torch.cat([vwin[..., 1:], valid[..., x:x + 1]], -1)
        see = torch.cat([vwin[..., :-1], torch.ones_like(vwin[..., -1:]), cvalid], -1)  # a query sees itself
        keys, vals = torch.cat([kw, ck], 2), torch.cat([vw, cv], 2)
        s = (q[:, :, t:t + 1].to(ct) @ keys.transpose(-1, -2)) * sc                    # (B, H, 1, w + size)
        s = s.masked_fill(~see[:, :, None], float("-inf"))
        a = f * torch.exp(s - s.amax(-1, keepdim=True))
        fqt = fq[:, :, t:t + 1].to(ct)
        outs.append((a @ vals + fqt @ S) / (a.sum(-1, keepdim=True) + fqt @ z[..., None]))
    o = torch.cat(outs, 2)
    final = None
    if output_final_state:
        k_all, v_all, valid_all = win
        final = (k_all[:, :, -w:], v_all[:, :, -w:], valid_all[:, -w:], S, z, ck * cvalid[..., None],
                 cv * cvalid[..., None], cvalid)
    return o.to(dtype), final


FORMS = {"naive": naive_window_linear_cache, "chunked": chunk_window_linear_cache,
         "recurrent": recurrent_window_linear_cache}

"""Sliding-window softmax attention plus linear attention over everything older, in one normalised sum per head
(LoLCATs, Zhang et al. 2024, "linear + sliding window" attention).

For query t, with W_t its window (the ``window`` most recent positions, itself included) and O_t the older ones:

    a_ts = f * exp(q_t k_s^T * scale - m_t)   for s in W_t      m_t = max_{s in W_t} q_t k_s^T * scale
    b_ts = phi(q_t) . psi(k_s)               for s in O_t
    o_t  = (sum_W a_ts v_s + sum_O b_ts v_s) / (sum_W a_ts + sum_O b_ts)

f is a per-head window factor in (0, 1) (LoLCATs: sigmoid of a learned parameter; the linear terms have factor 1).
With ``log_decay`` (H,) = log(gamma_h) <= 0 the linear part decays (xatl's variant; LoLCATs has gamma = 1): a key
that left the window s steps before query t weighs gamma^s, i.e. b_ts = gamma^(t - w - s) phi(q_t) . psi(k_s), its
state recurs as S_t = gamma S_{t-1} + psi(k) v (and z likewise), so the linear terms' share of the normaliser stays
bounded (about 1 / (1 - gamma) keys) however long the context grows.
As in LoLCATs the softmax terms are shifted by their own row maximum, so both kinds of terms are O(1) whatever
the scale of the scores; the result is exactly the same in all three forms.

Shapes: q (B, H, T, D); k, v (B, H_kv, T, D) (GQA: H a multiple of H_kv); fq = phi(q) (B, H, T, F) >= 0;
``k_features``: a function psi, keys (B, H, S, D) (K/V heads repeated to H) -> (B, H, S, F) >= 0; factor (H,);
key_mask (B, T) bool, False = padding (a padded key adds nothing to either part; a query always sees itself);
log_decay (H,) or None; k_lin (B, H_kv, T, D) or None: the keys psi sees (default: k; xatl's variant passes the
unrotated keys, so that the linear part's scores do not depend on absolute position). With k_lin the state has a
sixth element, the window's linear keys (B, H_kv, w, D).
``sinks`` N > 0 (attention sinks, :mod:`xatl.ops.sinks`): the first N valid pairs to leave the window stay exact
softmax terms for every later query (scored against ``q_sink``, default q) instead of entering the linear part;
the state then ends with the sinks' keys, values (B, H_kv, N, D) and held (B, N).
State: (k (B, H_kv, w, D), v (B, H_kv, w, D), valid (B, w), S (B, H, F, D), z (B, H, F)): the window's last w
rotated keys and values (oldest first) and the linear state of every valid position that has left the window;
its size does not depend on the sequence length.

Forms: ``naive`` (the (T, w + T) score matrix), ``chunked`` (per query chunk, the (w + C - 1)-key strip it can see
plus chunked linear attention lagging ``window`` positions behind) and ``recurrent`` (token by token).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .linear_attention import chunk_linear_attn
from .retention import chunk_retention
from .sinks import SinkSlots, sink_logits, sink_slots
from .sliding_window import _with_window

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
KFeatures = Callable[[torch.Tensor], torch.Tensor]


def _linear_inputs(k_all, v_all, valid, T: int, H: int, k_features: KFeatures):
    """psi(keys) and values of the first T extended positions (those that have left the window of query t by
    then), K/V heads repeated to H, padded positions zeroed: (B, H, T, F), (B, H, T, D)."""
    rep = H // k_all.shape[1]
    m = valid[:, None, :T, None].to(v_all.dtype)
    fk = k_features(k_all[:, :, :T].repeat_interleave(rep, 1)).to(v_all.dtype) * m
    return fk, v_all[:, :, :T].repeat_interleave(rep, 1) * m


def _zero_linear_state(B: int, H: int, Fdim: int, D: int, like: torch.Tensor):
    return like.new_zeros(B, H, Fdim, D), like.new_zeros(B, H, Fdim)


def _scale(scale: float | None, D: int) -> float:
    return scale if scale is not None else D**-0.5


def _log_gamma(log_decay, H: int, like: torch.Tensor) -> torch.Tensor:
    """log(gamma) (H,) in ``like``'s dtype (zeros without decay)."""
    return (log_decay if log_decay is not None else like.new_zeros(H)).to(like.dtype)


def _decay_weights(log_decay, T: int, like: torch.Tensor):
    """(gamma^(t - j) for the (T, w + T) extended matrix's lower part, gamma^(t + 1) per query, gamma^(T - 1 - j)
    per linear input, gamma^T): the decay factors of the naive form (all ones where ``log_decay`` is None)."""
    g = _log_gamma(log_decay, like.shape[1], like)[:, None]                          # (H, 1)
    pos = torch.arange(T, device=like.device, dtype=like.dtype)
    diff = (pos[:, None] - pos[None, :]).clamp(min=0)                               # (T, T): t - j for j < T
    pair = torch.exp(g[..., None] * diff)                                          # (H, T, T)
    return (pair, torch.exp(g * (pos + 1))[..., None], torch.exp(g * (T - 1 - pos))[..., None],
            torch.exp(g * T))


def _sinks(k_all, v_all, valid, T: int, sinks: int, initial_state, w: int):
    """The call's sink slots (None without sinks) and the valid mask of the pairs the linear part takes:
    (SinkSlots | None, (B, w + T))."""
    if not sinks:
        return None, valid
    sk = sink_slots(k_all, v_all, valid, T, sinks, initial_state[-3:] if initial_state else None)
    return sk, valid & ~F.pad(sk.taken, (0, w))


def _with_sinks(s, sk: SinkSlots | None, q_sink, t, scale: float):
    """The sinks' scores beside the window's s (B, H, *Q, S) and their joint row maximum: (scores or None, max)."""
    m = s.amax(-1, keepdim=True)
    if sk is None:
        return None, m
    s_k = sink_logits(q_sink.to(s.dtype), sk.keys, sk.step, t, scale)
    return s_k, torch.maximum(m, s_k.amax(-1, keepdim=True))


def _sink_terms(s_k, sk: SinkSlots, m, f):
    """The sinks' numerator and denominator terms, from their scores s_k (B, H, *Q, N): (B, H, *Q, D), (B, H, *Q, 1)."""
    a = f * torch.exp(s_k - m)
    B, H = a.shape[:2]
    vr = sk.values.repeat_interleave(H // sk.values.shape[1], 1)
    num = (a.reshape(B, H, -1, a.shape[-1]) @ vr).view(*a.shape[:-1], vr.shape[-1])
    return num, a.sum(-1, keepdim=True)


def _linear_keys(k_lin, v, key_mask, initial_state, w: int, k_all):
    """The extended keys psi sees: (B, H_kv, w + T, D), the window's from the state's sixth element."""
    if k_lin is None:
        return k_all
    init = (initial_state[5], initial_state[1], initial_state[2]) if initial_state else None
    return _with_window(k_lin, v, key_mask, init, w)[0]


def naive_window_linear(q, k, v, fq, k_features: KFeatures, factor, window: int, scale: float | None = None,
                        key_mask=None, initial_state: State | None = None, output_final_state: bool = False,
                        log_decay=None, k_lin=None, sinks: int = 0, q_sink=None):
    """Reference: the full (T, w + T) matrices of both parts, masked."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    w = window
    k_all, v_all, valid = _with_window(k, v, key_mask, initial_state[:3] if initial_state else None, w)
    kl_all = _linear_keys(k_lin, v, key_mask, initial_state, w, k_all)
    sk, lin_valid = _sinks(k_all, v_all, valid, T, sinks, initial_state, w)
    ct = k_all.dtype
    rep = H // k.shape[1]
    kr, vr = k_all.repeat_interleave(rep, 1), v_all.repeat_interleave(rep, 1)       # (B, H, w + T, D)
    fq = fq.to(ct)
    S0, z0 = initial_state[3:5] if initial_state else _zero_linear_state(B, H, fq.shape[-1], v.shape[-1], kr)
    t = torch.arange(T, device=q.device)[:, None]
    j = torch.arange(w + T, device=q.device)[None, :]
    in_window = ((j > t) & (j <= t + w) & valid[:, None, :]) | (j == t + w)[None]    # (B, T, w + T)
    older = (j <= t)[None] & lin_valid[:, None, :]
    s = (q.to(ct) @ kr.transpose(-1, -2)) * _scale(scale, D)
    s = s.masked_fill(~in_window[:, None], float("-inf"))
    s_k, m = _with_sinks(s, sk, q if q_sink is None else q_sink, t[:, 0], _scale(scale, D))
    f = factor.to(ct)[None, :, None, None]
    a = f * torch.exp(s - m)
    fk = k_features(kl_all.repeat_interleave(rep, 1)).to(ct)
    pair, from_state, to_state, over_all = _decay_weights(log_decay, T, fq)
    b = (fq @ fk.transpose(-1, -2)).masked_fill(~older[:, None], 0.0)
    if log_decay is not None:                                                     # extended j < T only is older
        b = torch.cat([b[..., :T] * pair, b[..., T:]], -1)
    num = (a + b) @ vr + (fq @ S0.to(ct)) * from_state
    den = (a + b).sum(-1, keepdim=True) + (fq @ z0.to(ct)[..., None]) * from_state
    if sk is not None:
        num_k, den_k = _sink_terms(s_k, sk, m, f)
        num, den = num + num_k, den + den_k
    o = num / den
    final = None
    if output_final_state:
        fk_old, v_old = _linear_inputs(kl_all, v_all, lin_valid, T, H, k_features)
        fk_old = fk_old * to_state
        final = (k_all[:, :, -w:], v_all[:, :, -w:], valid[:, -w:],
                 S0.to(ct) * over_all[..., None] + fk_old.transpose(-1, -2) @ v_old,
                 z0.to(ct) * over_all + fk_old.sum(2)) + ((kl_all[:, :, -w:],) if k_lin is not None else ()) + (
            sk.final() if sk is not None else ())
    return o.to(dtype), final


def chunk_window_linear(q, k, v, fq, k_features: KFeatures, factor, window: int, scale: float | None = None,
                        key_mask=None, initial_state: State | None = None, output_final_state: bool = False,
                        chunk_size: int = 64, log_decay=None, k_lin=None, sinks: int = 0, q_sink=None):
    """Chunked form: the softmax part over per-chunk key strips (as ``chunk_swa``) and the sinks, the linear part
    as chunked linear attention between query t and extended position t (the one that has just left its window)."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    C, w = chunk_size, window
    k_all, v_all, valid = _with_window(k, v, key_mask, initial_state[:3] if initial_state else None, w)
    kl_all = _linear_keys(k_lin, v, key_mask, initial_state, w, k_all)
    sk, lin_valid = _sinks(k_all, v_all, valid, T, sinks, initial_state, w)
    ct = k_all.dtype
    rep = H // k.shape[1]
    # --- softmax over the window: strips of the w + C - 1 keys each chunk can see
    n = -(-T // C)
    pad = n * C - T
    Sw = w + C - 1
    qc = F.pad(q.to(ct), (0, 0, 0, pad)).view(B, H, n, C, D)
    strips = []
    for x in (k_all, v_all):
        x = F.pad(x[:, :, 1:], (0, 0, 0, pad))                                      # key j sits at j - 1
        strips.append(x.unfold(2, Sw, C).permute(0, 1, 2, 4, 3).repeat_interleave(rep, 1))   # (B, H, n, Sw, D)
    vis = F.pad(valid[:, 1:], (0, pad)).unfold(1, Sw, C)                           # (B, n, Sw)
    i = torch.arange(C, device=q.device)[:, None]
    o_ = torch.arange(Sw, device=q.device)[None, :]
    band = (o_ >= i) & (o_ <= i + w - 1)
    allowed = (band & vis[:, :, None, :]) | (o_ == i + w - 1)                      # (B, n, C, Sw)
    s = (qc @ strips[0].transpose(-1, -2)) * _scale(scale, D)                      # (B, H, n, C, Sw)
    s = s.masked_fill(~allowed[:, None], float("-inf"))
    qs = None if sk is None else F.pad((q if q_sink is None else q_sink).to(ct), (0, 0, 0, pad)).view(B, H, n, C, D)
    s_k, m = _with_sinks(s, sk, qs, torch.arange(n * C, device=q.device).view(n, C), _scale(scale, D))
    f = factor.to(ct)[None, :, None, None, None]
    a = f * torch.exp(s - m)
    Dv = v.shape[-1]
    num_sm, den_sm = a @ strips[1], a.sum(-1, keepdim=True)
    if sk is not None:
        num_k, den_k = _sink_terms(s_k, sk, m, f)
        num_sm, den_sm = num_sm + num_k, den_sm + den_k
    num_sm = num_sm.reshape(B, H, n * C, Dv)[:, :, :T]
    den_sm = den_sm.reshape(B, H, n * C, 1)[:, :, :T]
    # --- linear attention over positions that have left the window (lagging w behind; ones column = denominator)
    fk, vl = _linear_inputs(kl_all, v_all, lin_valid, T, H, k_features)
    S0, z0 = initial_state[3:5] if initial_state else _zero_linear_state(B, H, fq.shape[-1], v.shape[-1], fk)
    v_aug = torch.cat([vl, torch.ones_like(vl[..., :1])], -1)                       # (B, H, T, D + 1)
    S0_aug = torch.cat([S0.to(ct), z0.to(ct)[..., None]], -1)                       # (B, H, F, D + 1)
    if log_decay is None:
        lin, lin_final = chunk_linear_attn(fq.to(ct), fk, v_aug, initial_state=(S0_aug, z0.to(ct)),
                                           output_final_state=output_final_state, normalize=False, chunk_size=C)
        lin_final = lin_final[0] if output_final_state else None
    else:
        lin, lin_final = chunk_retention(fq.to(ct), fk, v_aug, log_decay, initial_state=S0_aug,
                                         output_final_state=output_final_state, chunk_size=C)
    o = (num_sm + lin[..., :Dv]) / (den_sm + lin[..., Dv:])
    final = None
    if output_final_state:
        final = (k_all[:, :, -w:], v_all[:, :, -w:], valid[:, -w:], lin_final[..., :Dv], lin_final[..., Dv]) + (
            (kl_all[:, :, -w:],) if k_lin is not None else ()) + (sk.final() if sk is not None else ())
    return o.to(dtype), final


def recurrent_window_linear(q, k, v, fq, k_features: KFeatures, factor, window: int, scale: float | None = None,
                            key_mask=None, initial_state: State | None = None, output_final_state: bool = False,
                            log_decay=None, k_lin=None, sinks: int = 0, q_sink=None):
    """Token by token (decoding): the oldest window slot moves into a free sink slot or else into the linear
    state, the new token enters the window, then one normalised sum over the window, the sinks and the linear
    state."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    w = window
    kw, vw, valid = _with_window(k[:, :, :0], v[:, :, :0], None, initial_state[:3] if initial_state else None, w)
    has_lin = k_lin is not None
    klw = _linear_keys(k_lin[:, :, :0] if has_lin else None, v[:, :, :0], None, initial_state, w, kw)
    k_lin = k_lin if has_lin else k
    ct = kw.dtype
    rep = H // k.shape[1]
    S, z = initial_state[3:5] if initial_state else _zero_linear_state(B, H, fq.shape[-1], v.shape[-1], kw)
    S, z = S.to(ct), z.to(ct)
    if sinks and initial_state:                                                     # empty slots read as zeros
        held = initial_state[-1].bool()
        sk, sv = (x.to(ct) * held[:, None, :, None] for x in initial_state[-3:-1])
    elif sinks:
        sk, sv = kw.new_zeros(B, kw.shape[1], sinks, D), vw.new_zeros(B, vw.shape[1], sinks, vw.shape[-1])
        held = torch.zeros(B, sinks, dtype=torch.bool, device=q.device)
    km = key_mask.bool() if key_mask is not None else torch.ones(B, T, dtype=torch.bool, device=q.device)
    f = factor.to(ct)[None, :, None, None]
    sc = _scale(scale, D)
    self_only = torch.zeros(w, dtype=torch.bool, device=q.device)
    self_only[-1] = True
    gamma = torch.exp(log_decay.to(ct))[None, :, None] if log_decay is not None else None    # (1, H, 1)
    q_sink = q if q_sink is None else q_sink
    outs = []
    for qt, qst, fqt, kt, klt, vt, mt in zip(q.unbind(2), q_sink.unbind(2), fq.unbind(2), k.unbind(2),
                                             k_lin.unbind(2), v.unbind(2), km.unbind(1)):
        leaving = valid[:, 0]                                                       # the slot that leaves
        if sinks:                                                                   # into the first free sink slot
            slot = (torch.arange(sinks, device=q.device) == held.sum(1, keepdim=True)) & leaving[:, None]
            sk = torch.where(slot[:, None, :, None], kw[:, :, :1], sk)
            sv = torch.where(slot[:, None, :, None], vw[:, :, :1], sv)
            held, leaving = held | slot, leaving & ~slot.any(1)
        m_old = leaving.to(ct)[:, None, None, None]
        fk_old = k_features(klw[:, :, :1].repeat_interleave(rep, 1)).to(ct) * m_old  # (B, H, 1, F)
        v_old = vw[:, :, :1].repeat_interleave(rep, 1) * m_old                       # (B, H, 1, D)
        if gamma is not None:
            S, z = S * gamma[..., None], z * gamma
        S = S + fk_old.transpose(-1, -2) @ v_old
        z = z + fk_old[:, :, 0]
        kw = torch.cat([kw[:, :, 1:], kt[:, :, None].to(ct)], 2)
        klw = torch.cat([klw[:, :, 1:], klt[:, :, None].to(ct)], 2)
        vw = torch.cat([vw[:, :, 1:], vt[:, :, None].to(ct)], 2)
        valid = torch.cat([valid[:, 1:], mt[:, None]], 1)
        s = (qt.to(ct)[:, :, None] @ kw.repeat_interleave(rep, 1).transpose(-1, -2)) * sc   # (B, H, 1, w)
        s = s.masked_fill(~(valid | self_only)[:, None, None], float("-inf"))
        m = s.amax(-1, keepdim=True)
        if sinks:
            s_k = (qst.to(ct)[:, :, None] @ sk.repeat_interleave(rep, 1).transpose(-1, -2)) * sc   # (B, H, 1, N)
            s_k = s_k.masked_fill(~held[:, None, None], float("-inf"))
            m = torch.maximum(m, s_k.amax(-1, keepdim=True))
        a = f * torch.exp(s - m)
        fqt = fqt.to(ct)[:, :, None]                                                 # (B, H, 1, F)
        num = a @ vw.repeat_interleave(rep, 1) + fqt @ S
        den = a.sum(-1, keepdim=True) + fqt @ z[..., None]
        if sinks:
            a_k = f * torch.exp(s_k - m)
            num, den = num + a_k @ sv.repeat_interleave(rep, 1), den + a_k.sum(-1, keepdim=True)
        outs.append(num / den)
    o = torch.cat(outs, 2)
    extra = ((klw,) if has_lin else ()) + ((sk, sv, held) if sinks else ())
    return o.to(dtype), ((kw, vw, valid, S, z) + extra if output_final_state else None)


FORMS = {"naive": naive_window_linear, "chunked": chunk_window_linear, "recurrent": recurrent_window_linear}

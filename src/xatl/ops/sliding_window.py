"""Sliding-window softmax attention: each query attends to the ``window`` most recent positions (itself included).

    o_t = softmax_{t - w < s <= t, s valid}(q_t k_s^T * scale) v_s

Shapes: q (B, H, T, D); k, v (B, H_kv, T, D) (GQA: H a multiple of H_kv); key_mask (B, T) bool, False = padding.
State: (k (B, H_kv, w, D), v (B, H_kv, w, D), valid (B, w) bool): the last w positions, oldest first, so its size
does not depend on the sequence length. Padded keys are never attended to; a query always sees itself (so a
padded query's row stays finite; its output is never read by a real token).

The chunked form cuts the queries into chunks of ``chunk_size``; chunk n attends to the w + C - 1 keys its rows
can see, taken as strided views of the key sequence (no copy of the whole T x T score matrix): cost
O(T (w + C) D), linear in T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .utils import acc_dtype

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _with_window(k, v, key_mask, initial_state: State | None, window: int):
    """Prepend the window state: (k (B, H_kv, w + T, D), v, valid (B, w + T)), all in the accumulation dtype."""
    B, Hkv, T, D = k.shape
    ct = acc_dtype(v)
    if initial_state is None:
        kw = k.new_zeros(B, Hkv, window, D, dtype=ct)
        vw = v.new_zeros(B, Hkv, window, v.shape[-1], dtype=ct)
        valid = torch.zeros(B, window, dtype=torch.bool, device=k.device)
    else:
        kw, vw, valid = initial_state
    km = key_mask.bool() if key_mask is not None else torch.ones(B, T, dtype=torch.bool, device=k.device)
    return (torch.cat([kw.to(ct), k.to(ct)], 2), torch.cat([vw.to(ct), v.to(ct)], 2),
            torch.cat([valid.bool(), km], 1))


def _final(k_all, v_all, valid_all, window: int) -> State:
    return k_all[:, :, -window:], v_all[:, :, -window:], valid_all[:, -window:]


def naive_swa(q, k, v, window: int, scale: float | None = None, key_mask=None, initial_state: State | None = None,
              output_final_state: bool = False):
    """Reference: the full (T, w + T) score matrix with the band/padding mask, explicit softmax."""
    dtype, T = v.dtype, q.shape[2]
    k_all, v_all, valid = _with_window(k, v, key_mask, initial_state, window)
    rep = q.shape[1] // k.shape[1]
    kr, vr = k_all.repeat_interleave(rep, 1), v_all.repeat_interleave(rep, 1)
    scores = (q.to(kr.dtype) @ kr.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    t = torch.arange(T, device=q.device)[:, None] + window                  # query positions in the extended axis
    j = torch.arange(window + T, device=q.device)[None, :]
    band = (j > t - window) & (j <= t)
    allowed = (band[None] & valid[:, None, :]) | (j == t)[None]             # (B, T, w + T)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    o = torch.softmax(scores, -1) @ vr
    return o.to(dtype), (_final(k_all, v_all, valid, window) if output_final_state else None)


def chunk_swa(q, k, v, window: int, scale: float | None = None, key_mask=None, initial_state: State | None = None,
              output_final_state: bool = False, chunk_size: int = 64):
    """Chunked form: per chunk of queries, SDPA over the (w + C - 1)-key strip it can see."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    C, w = chunk_size, window
    k_all, v_all, valid = _with_window(k, v, key_mask, initial_state, w)
    n = -(-T // C)
    pad = n * C - T
    S = w + C - 1                                                           # keys one chunk can see
    q = F.pad(q.to(k_all.dtype), (0, 0, 0, pad)).view(B, H, n, C, D).transpose(1, 2).reshape(B * n, H, C, D)
    strips = []
    for x in (k_all, v_all):                                                # (B, H_kv, w + T, D)
        x = F.pad(x[:, :, 1:], (0, 0, 0, pad))                              # key j sits at j - 1
        strips.append(x.unfold(2, S, C).permute(0, 2, 1, 4, 3).reshape(B * n, -1, S, x.shape[-1]))
    vis = F.pad(valid[:, 1:], (0, pad)).unfold(1, S, C)                     # (B, n, S)
    i = torch.arange(C, device=q.device)[:, None]
    o_ = torch.arange(S, device=q.device)[None, :]
    band = (o_ >= i) & (o_ <= i + w - 1)                                    # (C, S): t - w < j <= t
    mask = (band & vis[:, :, None, :]) | (o_ == i + w - 1)                  # (B, n, C, S), self always visible
    o = F.scaled_dot_product_attention(q, strips[0], strips[1], attn_mask=mask.reshape(B * n, 1, C, S), scale=scale,
                                       enable_gqa=H != k.shape[1])          # (B * n, H, C, D)
    o = o.view(B, n, H, C, -1).transpose(1, 2).reshape(B, H, n * C, -1)[:, :, :T]
    return o.to(dtype), (_final(k_all, v_all, valid, w) if output_final_state else None)


def recurrent_swa(q, k, v, window: int, scale: float | None = None, key_mask=None,
                  initial_state: State | None = None, output_final_state: bool = False):
    """Token by token (decoding): the window state shifts by one position per token."""
    dtype, (B, H, T, D) = v.dtype, q.shape
    kw, vw, valid = _with_window(k[:, :, :0], v[:, :, :0], None, initial_state, window)
    km = key_mask.bool() if key_mask is not None else torch.ones(B, T, dtype=torch.bool, device=q.device)
    rep, ct = H // k.shape[1], kw.dtype
    scale = scale if scale is not None else D**-0.5
    self_only = torch.zeros(window, dtype=torch.bool, device=q.device)
    self_only[-1] = True
    outs = []
    for qt, kt, vt, mt in zip(q.unbind(2), k.unbind(2), v.unbind(2), km.unbind(1)):
        kw = torch.cat([kw[:, :, 1:], kt[:, :, None].to(ct)], 2)
        vw = torch.cat([vw[:, :, 1:], vt[:, :, None].to(ct)], 2)
        valid = torch.cat([valid[:, 1:], mt[:, None]], 1)
        s = (qt.to(ct)[:, :, None] @ kw.repeat_interleave(rep, 1).transpose(-1, -2)) * scale   # (B, H, 1, w)
        s = s.masked_fill(~(valid | self_only)[:, None, None], float("-inf"))
        outs.append(torch.softmax(s, -1) @ vw.repeat_interleave(rep, 1))                      # (B, H, 1, D)
    o = torch.cat(outs, 2)
    return o.to(dtype), ((kw, vw, valid) if output_final_state else None)


FORMS = {"naive": naive_swa, "chunked": chunk_swa, "recurrent": recurrent_swa}

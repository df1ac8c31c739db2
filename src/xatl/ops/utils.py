"""Small helpers shared by the ops, and :func:`run_form`, which runs the form a mixer asks for from an op module's
``FORMS`` table."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, N, C, D), zero-padding T up to N * C."""
    B, H, T, D = x.shape
    n = -(-T // chunk_size)
    pad = n * chunk_size - T
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.view(B, H, n, chunk_size, D)


def unchunk(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, N, C, D) -> (B, H, length, D)."""
    B, H, N, C, D = x.shape
    return x.reshape(B, H, N * C, D)[:, :, :length]


def exclusive_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum of all elements strictly before each index along ``dim`` (no subtraction, so no cancellation)."""
    shifted = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)
    return shifted.cumsum(dim)


def without_autocast(x: torch.Tensor):
    """A context with autocast off on ``x``'s device: a custom autograd Function that casts its inputs itself
    (to ``acc_dtype``) must not have autocast recast its products to bf16 in forward, since its backward, which
    runs without autocast, then meets bf16 gradients beside float32 tensors."""
    return torch.autocast(x.device.type, enabled=False)


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    """Accumulation dtype: float32, or float64 when the inputs already are (tests use float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def segsum(g: torch.Tensor) -> torch.Tensor:
    """Segment sums of a log decay along the last dim, exactly (no cumsum differences, so no cancellation).

    g (..., T) -> (..., T, T) with out[..., t, s] = sum_{s < r <= t} g[..., r] for s <= t and -inf above the
    diagonal, so that ``exp(segsum(g))`` is the causal decay matrix (1 on the diagonal, 0 above it).
    """
    T = g.shape[-1]
    x = g[..., :, None].expand(*g.shape, T)                              # x[..., t, s] = g[..., t]
    strict = torch.ones(T, T, dtype=torch.bool, device=g.device).tril(-1)
    x = x.masked_fill(~strict, 0).cumsum(-2)                             # sum over s < r <= t
    causal = torch.ones(T, T, dtype=torch.bool, device=g.device).tril()
    return x.masked_fill(~causal, float("-inf"))


def scan_chunk_states(U: torch.Tensor, log_decay: torch.Tensor, S0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The state before each chunk, from per-chunk contributions, by a short loop over chunks (O(N) work).

    U: (B, H, N, K, V) contribution of chunk n to the state at its end; log_decay: (B, H, N, K) or (B, H, N, 1), the
    total log decay across chunk n (per key channel or per head); S0: (B, H, K, V).
    Returns (states (B, H, N, K, V): S_n before chunk n, final state after the last chunk (B, H, K, V)).
    """
    states, S = [], S0
    for u, g in zip(U.unbind(2), log_decay.unbind(2)):                    # unbind: cheap backward (a stack)
        states.append(S)
        S = torch.exp(g)[..., None] * S + u
    return torch.stack(states, 2), S


def finish_chunked(intra: torch.Tensor, q_dec: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, b: torch.Tensor,
                   total: torch.Tensor, initial_state: torch.Tensor | None, output_final_state: bool, length: int,
                   dtype: torch.dtype):
    """The part of a chunked decayed linear attention (GLA, SSD) that crosses chunks: each chunk's contribution to
    the state at its end, the state before every chunk, and what that state gives the chunk's queries.

    intra (B, H, N, C, V): the chunks' own outputs; q_dec (B, H, N, C, K): the queries decayed back to their chunk's
    start (q * exp(b)); kc (B, H, N, C, K), vc (B, H, N, C, V); b: the log decay since the chunk start, (B, H, N, C, K)
    per key channel or (B, H, N, C, 1) per head; total (B, H, N, K | 1): b at the chunk's end; initial_state
    (B, H, K, V) or None. Returns (o (B, H, length, V) in ``dtype``, the final state or None).
    """
    B, H, _, _, K = kc.shape
    U = (kc * torch.exp(total.unsqueeze(-2) - b)).transpose(-1, -2) @ vc    # (B, H, N, K, V)
    S0 = initial_state.to(kc.dtype) if initial_state is not None else kc.new_zeros(B, H, K, vc.shape[-1])
    states, final = scan_chunk_states(U, total, S0)
    o = intra + q_dec @ states
    return unchunk(o, length).to(dtype), (final if output_final_state else None)


def run_form(forms: dict, form: str, *args, chunked: dict | None = None, **kwargs):
    """``forms[form](*args, **kwargs)``: the form named ``form`` ("naive", "chunked" or "recurrent") of an op
    module's ``FORMS`` table, given the keyword arguments ``chunked`` (``chunk_size``, ``use_fla``) when it is the
    chunked one."""
    extra = chunked if form == "chunked" and chunked else {}
    return forms[form](*args, **kwargs, **extra)

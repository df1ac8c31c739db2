"""The attention projections of the mixers that take the donor's Q/K/V/O (softmax, swa, lolcats, linear, retention,
gla): one builder, so that every such mixer names, shapes and creates them the same way (the transfer copies the
donor's weights into ``q_proj``/``k_proj``/``v_proj``/``o_proj``, and seeded initialisation depends on the order in
which modules are created).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..ops.rope import apply_rope
from .base import MixerContext, split_heads


def attention_projections(module: nn.Module, config, kv_heads: int | None = None, value_dim: int | None = None,
                          before_o: Callable[[], None] | None = None) -> None:
    """Give ``module`` q_proj (C -> H*D), k_proj (C -> kv_heads*D), v_proj (C -> kv_heads*Dv) and o_proj
    (H*Dv -> C), created in that order, with the donor's biases (``attention_bias``, ``attention_out_bias``),
    and, for donors with ``qk_norm``, the donor's q_norm / k_norm (over D per head, or over H*D / kv_heads*D),
    which `project_heads` applies.

    kv_heads: the key/value heads (default H, full heads: the transfer repeats a GQA donor's K/V heads);
    value_dim: the value head dim Dv (default the head dim D); before_o: creates the mixer's modules that come
    between v_proj and o_proj (gates), so that they keep their place in the creation order.
    """
    H, D, C = config.num_attention_heads, config.head_dim, config.hidden_size
    kv_heads = H if kv_heads is None else kv_heads
    Dv = D if value_dim is None else value_dim
    module.q_proj = nn.Linear(C, H * D, bias=config.attention_bias)
    module.k_proj = nn.Linear(C, kv_heads * D, bias=config.attention_bias)
    module.v_proj = nn.Linear(C, kv_heads * Dv, bias=config.attention_bias)
    if before_o is not None:
        before_o()
    module.o_proj = nn.Linear(H * Dv, C, bias=config.attention_out_bias)
    module.qk_norm = config.qk_norm
    if config.qk_norm is not None:
        from ..models.layers import make_norm  # here, not at the top: xatl.models imports the mixers

        full = config.qk_norm == "full"
        module.q_norm = make_norm(config, H * D if full else D)
        module.k_norm = make_norm(config, kv_heads * D if full else D)


def donor_attention_projections(module: nn.Module, config, layer_idx: int) -> None:
    """Give ``module`` the donor's attention projections, exactly as the donor has them: q_proj (C -> H*D), k_proj
    and v_proj (C -> Hkv*D, grouped-query heads kept), o_proj (H*D -> C), with the donor's biases, plus
    ``num_kv_heads`` and the score ``scale`` (the donor's, incl. GPT-2's optional 1/(layer+1))."""
    module.num_kv_heads = config.num_key_value_heads
    attention_projections(module, config, kv_heads=config.num_key_value_heads)
    scale = config.attention_scale if config.attention_scale is not None else config.head_dim**-0.5
    if config.attention_scale_inverse_layer:
        scale /= float(layer_idx + 1)
    module.scale = scale


def project_heads(module: nn.Module, part: str, x: torch.Tensor) -> torch.Tensor:
    """Queries (``part`` "q") or keys ("k") of a module built by :func:`attention_projections`, through the
    donor's q/k norm where it has one (over the whole projection, or per head): x (B, T, C) -> (B, H | H_kv, T, D)."""
    y = getattr(module, f"{part}_proj")(x)                                  # (B, T, H * D)
    norm = getattr(module, f"{part}_norm", None) if module.qk_norm is not None else None
    if norm is not None and module.qk_norm == "full":
        y = norm(y)
    y = split_heads(y, module.head_dim)                                      # (B, H, T, D)
    return norm(y) if norm is not None and module.qk_norm == "head" else y


def donor_qkv(module: nn.Module, x: torch.Tensor, ctx: MixerContext, unrotated: bool = False):
    """Queries, keys and values of a module built by :func:`donor_attention_projections`, with the donor's q/k
    norm and RoPE applied to q and k: x (B, T, C) -> q (B, H, T, D), k and v (B, H_kv, T, D); with ``unrotated``
    also q and k before RoPE: (q, k, v, q_unrotated, k_unrotated)."""
    q = project_heads(module, "q", x)
    k = project_heads(module, "k", x)
    v = split_heads(module.v_proj(x), module.head_dim)
    raw = (q, k)
    if ctx.rope is not None:
        q, k = apply_rope(q, *ctx.rope), apply_rope(k, *ctx.rope)
    return (q, k, v) + (raw if unrotated else ())

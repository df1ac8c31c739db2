"""What a model's context costs: how far it can go, and the bytes its decoding state holds at each length.

A model is *linear-cost* when no layer keeps a cache that grows with the context: an XATL student whose every
mixer is recurrent (``Mixer.recurrent``: a fixed-size state, or a bounded window) and whose positions are not a
learned table. Such a model has no context limit; any other model (a softmax Transformer, a hybrid student with
softmax layers, a learned-position model) stops at ``max_position_embeddings``, and longer lengths are skipped
(and reported as skipped) rather than scored past what it was built for.

The state bytes are measured, not computed: the tensors of the cache after prefilling n tokens (an ``XATLCache``'s
recurrent states and windows and any KV caches of softmax layers; a transformers ``DynamicCache``'s keys and
values, ``2 * layers * kv_heads * head_dim * n * dtype bytes`` for full attention).
"""

from __future__ import annotations


def text_config(config):
    """The text part of a config (Gemma 3's multimodal config holds one), else the config itself."""
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def linear_cost(config) -> bool:
    """Whether the model's decoding state stays the same size however long the context (module docstring)."""
    mixers = getattr(config, "layer_mixers", None)
    if mixers is None or getattr(config, "position_embedding", None) == "learned":
        return False
    from ...mixers.registry import is_recurrent

    return all(is_recurrent(m) for m in mixers)


def context_limit(config) -> tuple[int | None, str]:
    """(the longest context the model is scored at, or None for no limit; why)."""
    if linear_cost(config):
        return None, "linear-cost model: every layer keeps a fixed-size state"
    limit = getattr(text_config(config), "max_position_embeddings", None)
    if limit is None:
        return None, "the config states no max_position_embeddings"
    kind = "student with softmax or learned-position layers" if hasattr(config, "layer_mixers") else "model"
    return int(limit), f"{kind}: max_position_embeddings = {limit}"


def state_kind(model) -> str:
    """``recurrent state``, ``state + KV cache`` (hybrid student) or ``KV cache``."""
    from ..profile import cache_kind

    return cache_kind(model, object())


def cache_bytes(cache) -> int:
    """Bytes held by the tensors of a decoding cache (``XATLCache`` or a transformers cache)."""
    from ..profile import cache_nbytes

    return cache_nbytes(cache)

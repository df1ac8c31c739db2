"""Generation helpers around transformers' ``generate()``: decoding settings, streaming to a terminal, text in/out,
and multi-turn chat that keeps the cache between turns. The decoding itself (XATLCache, prefill once then one
recurrent step per token) lives in ``xatl.models``. Names import on first use (``xatl.utils.lazy``)."""

from ..utils.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ChatSession", "render_plain"], "chat"),
    "DecodingSettings": "settings",
    **dict.fromkeys(["StreamPrinter", "cut_at_stop"], "streaming"),
    **dict.fromkeys(["GenerationResult", "generate_text", "new_cache"], "text"),
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

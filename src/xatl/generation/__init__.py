"""Generation helpers around transformers' ``generate()``: decoding settings, streaming to a terminal, text in/out,
and multi-turn chat that keeps the cache between turns. The decoding itself (XATLCache, prefill once then one
recurrent step per token) lives in ``xatl.models``."""

from .chat import ChatSession, render_plain
from .settings import DecodingSettings
from .streaming import StreamPrinter, cut_at_stop
from .text import GenerationResult, generate_text, new_cache

__all__ = ["ChatSession", "DecodingSettings", "GenerationResult", "StreamPrinter", "cut_at_stop", "generate_text",
           "new_cache", "render_plain"]

"""Text in, text out: encode a prompt, ``generate()`` with streaming, decode, and measure what it cost."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

import torch

from ..errors import GenerationError
from .settings import DecodingSettings
from .streaming import StreamPrinter, cut_at_stop


@dataclass
class GenerationResult:
    """One generation, measured."""

    text: str
    """The generated text (prompt excluded), cut before any stop string."""
    new_tokens: int
    """Tokens generated (the longest beam/row)."""
    prompt_tokens: int
    """Tokens in the prompt."""
    seconds: float
    """Wall time of generate(), prefill included."""
    cache_bytes: int | None
    """Bytes held by the decoding cache at the end (None when the model kept no cache object)."""

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else float("inf")


def new_cache(model):
    """A fresh decoding cache for ``model``: an XATLCache for students, a DynamicCache for other HF models."""
    from ..models.cache import XATLCache
    from ..models.modeling_xatl import XATLForCausalLM

    if isinstance(model, XATLForCausalLM):
        return XATLCache(model.config)
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def cache_nbytes(cache) -> int | None:
    """Bytes held by ``cache`` (an XATLCache, or a transformers Cache whose layers hold keys/values)."""
    if cache is None:
        return None
    if hasattr(cache, "nbytes"):
        return int(cache.nbytes())
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def encode_prompt(tokenizer, prompt: str, device) -> torch.Tensor:
    """(1, T) token ids of ``prompt`` (with the tokenizer's special tokens, e.g. BOS); refuses an empty prompt."""
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(device)
    if ids.shape[1] == 0:
        raise GenerationError("the prompt is empty; pass some text with --prompt")
    return ids


def check_fits(model, prompt_tokens: int, max_new_tokens: int) -> None:
    """Refuse a prompt (plus the tokens to generate) longer than the context (``max_position_embeddings``) of a
    softmax Transformer. XATL students check their own limits in ``generate()`` (only softmax layers have one)."""
    from ..models.modeling_xatl import XATLForCausalLM

    if isinstance(model, XATLForCausalLM):
        return
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and prompt_tokens + max_new_tokens > limit:
        raise GenerationError(f"the prompt is {prompt_tokens} tokens and {max_new_tokens} more are asked for, but the "
                              f"model's context is {limit} tokens; shorten the prompt or lower --max-new-tokens")


def generate_text(model, tokenizer, prompt: str, settings: DecodingSettings, out: TextIO | None = None,
                  echo_prompt: bool = False) -> GenerationResult:
    """Continue ``prompt``; stream the text to ``out`` (when given and num_beams == 1) as it is generated, after
    the prompt itself when ``echo_prompt`` (written only once generation has started: a refused request prints
    nothing)."""
    settings.validate()
    device = next(model.parameters()).device
    ids = encode_prompt(tokenizer, prompt, device)
    check_fits(model, ids.shape[1], settings.max_new_tokens)
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    prefix = prompt if echo_prompt else ""
    streamer = StreamPrinter(tokenizer, out=out, stop=settings.stop, prefix=prefix) \
        if out is not None and settings.num_beams == 1 else None
    cache = new_cache(model)
    kwargs = settings.generate_kwargs(tokenizer)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.eos_token_id
    start = time.perf_counter()
    sequences = model.generate(ids, attention_mask=torch.ones_like(ids), cache=cache, streamer=streamer, **kwargs)
    seconds = time.perf_counter() - start
    new = sequences[0, ids.shape[1]:]
    text, _ = cut_at_stop(tokenizer.decode(new, skip_special_tokens=True), settings.stop)
    if out is not None and streamer is None:
        out.write(prefix + text)
        out.flush()
    if streamer is not None and streamer.prefix:          # nothing was generated: the prompt is still owed
        out.write(streamer.prefix)
    return GenerationResult(text=text, new_tokens=int(new.numel()), prompt_tokens=int(ids.shape[1]),
                            seconds=seconds, cache_bytes=cache_nbytes(cache))

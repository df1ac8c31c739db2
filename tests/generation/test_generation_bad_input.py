"""What generate() refuses, with one clear XATLError each: empty prompts, prompts beyond the context of a hybrid's
softmax layers, decoding modes a recurrent cache cannot serve, and caches of the wrong kind or size."""

from __future__ import annotations

import logging

import pytest
import torch
from generation_helpers import prompt_ids
from transformers import DynamicCache

from xatl import XATLCache
from xatl.errors import GenerationError, XATLError


def test_empty_prompt_is_refused(student):
    model = student("retention")
    with pytest.raises(GenerationError, match="prompt is empty"):
        model.generate(torch.empty(1, 0, dtype=torch.long), max_new_tokens=3)
    with pytest.raises(GenerationError, match="prompt is empty"):
        model.generate(input_ids=torch.empty(2, 0, dtype=torch.long), max_new_tokens=3)
    with pytest.raises(GenerationError, match="no bos_token_id"):
        model.generate(max_new_tokens=3)                  # the tiny model has no BOS to start from
    assert issubclass(GenerationError, XATLError)


def test_prompt_longer_than_softmax_context_is_refused_in_a_hybrid(student):
    hybrid, pure = student("retention", (1,)), student("retention")
    assert hybrid.config.max_position_embeddings == 128
    ids = prompt_ids(130, seed=1)
    with pytest.raises(GenerationError, match=r"130 tokens.*softmax attention \(layers \[1\]\).*at most 128"):
        hybrid.generate(ids, max_new_tokens=2)
    assert pure.generate(ids, max_new_tokens=2).shape == (1, 132)   # a pure LCI student has no such limit


def test_generation_past_the_softmax_context_stops_there(student, caplog):
    hybrid = student("linear", (1,))
    with caplog.at_level(logging.WARNING, logger="xatl.models.modeling_xatl"):
        out = hybrid.generate(prompt_ids(120, seed=2), max_new_tokens=20, do_sample=False)
    assert out.shape == (1, 128)
    assert "generation stops at 128 tokens" in caplog.text


@pytest.mark.parametrize("kwargs,words", [
    ({"assistant_model": "self"}, "assisted"),
    ({"prompt_lookup_num_tokens": 3}, "assisted"),
    ({"penalty_alpha": 0.6, "top_k": 4}, "contrastive"),
    ({"num_beams": 2, "num_beam_groups": 2, "diversity_penalty": 1.0}, "group beam"),
    ({"dola_layers": "low"}, "DoLa"),
], ids=["assistant", "prompt-lookup", "contrastive", "group-beam", "dola"])
def test_unsupported_generation_modes_are_refused(student, kwargs, words):
    model = student("retention")
    if kwargs.get("assistant_model") == "self":
        kwargs = dict(kwargs, assistant_model=model)
    with pytest.raises(GenerationError, match=f"not available for XATL students: {words}"):
        model.generate(prompt_ids(5), max_new_tokens=3, **kwargs)


def test_foreign_caches_are_refused(student):
    model = student("retention")
    ids = prompt_ids(5)
    with pytest.raises(GenerationError, match="XATLCache, not a DynamicCache"):
        model.generate(ids, max_new_tokens=3, cache=DynamicCache())
    with pytest.raises(GenerationError, match="cache_implementation='static' is not supported"):
        model.generate(ids, max_new_tokens=3, cache_implementation="static")
    with pytest.raises(GenerationError, match="paged"):
        model.generate(ids, max_new_tokens=3, cache_implementation="paged")
    with pytest.raises(GenerationError, match="XATLCache, not a DynamicCache"):
        model(ids, cache=DynamicCache(), use_cache=True)


def test_cache_of_another_batch_size_is_refused(student):
    model = student("retention")
    cache = XATLCache(model.config)
    model(prompt_ids(5, batch=2), cache=cache, use_cache=True)
    with pytest.raises(GenerationError, match="holds 2 sequences but the input has 3"):
        model(prompt_ids(1, batch=3), cache=cache, use_cache=True)

"""The XATLCache: constant memory for LCI students however long the output, a growing KV cache only where a
hybrid keeps softmax attention, row surgery for beam search, and continuing from a cache without rerunning it."""

from __future__ import annotations

import pytest
import torch
from generation_helpers import LCI_MIXERS, prompt_ids
from transformers import StoppingCriteria, StoppingCriteriaList

import xatl
from xatl import XATLCache


class RecordBytes(StoppingCriteria):
    """Record cache.nbytes() after every decoding step (never stops)."""

    def __init__(self, cache: XATLCache):
        self.cache, self.sizes = cache, []

    def __call__(self, input_ids, scores, **kwargs):
        self.sizes.append(self.cache.nbytes())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def generate_recording(model, steps: int, prompt_len: int = 8):
    cache = XATLCache(model.config)
    rec = RecordBytes(cache)
    out = model.generate(prompt_ids(prompt_len, seed=2), max_new_tokens=steps, do_sample=False, cache=cache,
                         stopping_criteria=StoppingCriteriaList([rec]))
    assert out.shape[1] == prompt_len + steps
    return rec.sizes, cache


@pytest.mark.parametrize("mixer", LCI_MIXERS)
def test_lci_state_bytes_do_not_grow_with_generated_length(student, mixer):
    sizes, cache = generate_recording(student(mixer), steps=1024)
    assert len(sizes) == 1024
    assert sizes[15] == sizes[1023] > 0, f"after 16 steps {sizes[15]} bytes, after 1024 steps {sizes[1023]} bytes"
    assert max(sizes) == sizes[1023], "the state grew and shrank again"
    assert cache.get_seq_length() == 8 + 1023


def test_hybrid_kv_cache_grows_by_one_token_per_step(student, donor):
    model = student("retention", (1,))
    sizes, cache = generate_recording(model, steps=32)
    c = donor.config
    per_token = 2 * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4     # k and v, float32
    assert all(b - a == per_token for a, b in zip(sizes, sizes[1:])), "KV cache (layer 1) grows one token a step"
    lci = [n for i, n in enumerate(cache.layer_nbytes()) if i != 1]
    pure_sizes, _ = generate_recording(student("retention"), steps=4)
    assert sum(lci) == pure_sizes[-1] * 2 // 3     # the two retention layers hold what they hold in the pure model


def test_reorder_and_repeat_rows():
    cache = XATLCache(num_layers=2)
    cache.states[0] = {"kv": torch.arange(3.0).view(3, 1, 1).expand(3, 2, 2).clone()}
    cache.states[1] = {"k": torch.arange(3.0).view(3, 1), "v": torch.arange(3.0).view(3, 1) * 10}
    cache.reorder_cache(torch.tensor([2, 2, 0]))
    assert cache.states[0]["kv"][:, 0, 0].tolist() == [2, 2, 0]
    assert cache.states[1]["v"][:, 0].tolist() == [20, 20, 0]
    cache.batch_repeat_interleave(2)
    assert cache.states[1]["k"][:, 0].tolist() == [2, 2, 2, 2, 0, 0] and cache.batch_size == 6
    assert cache.nbytes() == 6 * 4 * 4 + 2 * 6 * 4
    cache.crop(0)                                     # no-op
    with pytest.raises(xatl.errors.GenerationError, match="cannot be rolled back"):
        cache.crop(1)
    cache.reset()
    assert cache.nbytes() == 0 and cache.batch_size == -1 and cache.get_seq_length() == 0


@pytest.mark.parametrize("mixer,layers", [("retention", ()), ("linear", (1,))])
def test_continuing_from_a_cache_runs_only_the_new_tokens(student, mixer, layers):
    """Pass the cache of a first generate() back with the whole sequence plus new tokens (a chat's next turn):
    only the unseen tokens run, and the result equals generating from the whole sequence afresh."""
    model = student(mixer, layers)
    cache = XATLCache(model.config)
    first = model.generate(prompt_ids(7, seed=5), max_new_tokens=5, do_sample=False, cache=cache)
    assert cache.get_seq_length() == 7 + 4                  # the last generated token is not in the cache yet
    ids = torch.cat([first, prompt_ids(3, seed=6)], dim=1)
    lengths = []
    hook = model.model.embed_tokens.register_forward_pre_hook(lambda m, a: lengths.append(a[0].shape[1]))
    try:
        cont = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                              cache=cache, output_logits=True, return_dict_in_generate=True)
    finally:
        hook.remove()
    assert lengths[0] == 1 + 3, "only the last generated token and the 3 new ones run"
    fresh = model.generate(ids, max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
    assert torch.equal(cont.sequences, fresh.sequences)
    for got, want in zip(cont.logits, fresh.logits):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_prefill_in_pieces_equals_one_prefill(student):
    """generate(prefill_chunk_size=n) feeds a long prompt n tokens at a time through the cache (bounded activation
    memory); the result equals one prefill."""
    model = student("retention", (1,))
    ids = prompt_ids(11, seed=9)
    kw = dict(max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
    whole = model.generate(ids, **kw)
    pieces = model.generate(ids, prefill_chunk_size=3, **kw)
    assert torch.equal(whole.sequences, pieces.sequences)
    for got, want in zip(pieces.logits, whole.logits):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

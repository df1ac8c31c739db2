"""generate() with the XATLCache decodes exactly what full re-forwards decode: greedy, sampling, beam search and
left-padded batches, for every mixer and a hybrid. The prompt runs once; then one token per step."""

from __future__ import annotations

import pytest
import torch
from generation_helpers import SOME_VARIANT_IDS, SOME_VARIANTS, VARIANT_IDS, VARIANTS, prompt_ids

ATOL, RTOL = 5e-5, 1e-4


@torch.no_grad()
def greedy_reference(model, ids: torch.Tensor, steps: int):
    """Greedy decoding by re-running the whole sequence for every token (no cache). -> (ids, [logits (B, V)])"""
    logits = []
    for _ in range(steps):
        step = model(ids, use_cache=False).logits[:, -1]
        logits.append(step)
        ids = torch.cat([ids, step.argmax(-1, keepdim=True)], dim=1)
    return ids, logits


def count_tokens_per_forward(model):
    """Record the sequence length of every forward through the embedding; returns (lengths, hook handle)."""
    lengths = []
    handle = model.model.embed_tokens.register_forward_pre_hook(lambda m, a: lengths.append(a[0].shape[1]))
    return lengths, handle


@pytest.mark.parametrize("mixer,layers", VARIANTS, ids=VARIANT_IDS)
def test_greedy_generate_equals_full_reforward(student, mixer, layers):
    model = student(mixer, layers)
    ids = prompt_ids(9, seed=1)
    lengths, handle = count_tokens_per_forward(model)
    try:
        out = model.generate(ids, max_new_tokens=12, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    finally:
        handle.remove()
    ref_ids, ref_logits = greedy_reference(model, ids, 12)
    assert torch.equal(out.sequences, ref_ids)
    for step, (got, want) in enumerate(zip(out.logits, ref_logits)):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL, msg=lambda m, step=step: f"step {step}: {m}")
    assert lengths == [9] + [1] * 11, "the prompt must run once, then one token per step"
    assert out.cache.get_seq_length() == 9 + 11


def left_pad(prompts: list[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T), attention_mask (B, T)) with each 1-D prompt right-aligned."""
    T = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, T - len(p):], mask[b, T - len(p):] = p, 1
    return ids, mask


@pytest.mark.parametrize("mixer,layers", VARIANTS, ids=VARIANT_IDS)
def test_left_padded_batch_equals_each_prompt_alone(student, mixer, layers):
    model = student(mixer, layers)
    prompts = [prompt_ids(n, seed=10 + n)[0] for n in (10, 3, 7)]
    ids, mask = left_pad(prompts)
    kw = dict(max_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    batch = model.generate(ids, attention_mask=mask, **kw)
    for b, p in enumerate(prompts):
        alone = model.generate(p[None], **kw)
        assert torch.equal(batch.sequences[b, ids.shape[1]:], alone.sequences[0, len(p):]), f"prompt {b}"
        for step, (got, want) in enumerate(zip(batch.logits, alone.logits)):
            torch.testing.assert_close(got[b], want[0], atol=1e-4, rtol=1e-4,
                                       msg=lambda m, b=b, step=step: f"row {b} step {step}: {m}")


@pytest.mark.parametrize("mixer,layers", SOME_VARIANTS, ids=SOME_VARIANT_IDS)
def test_beam_search_with_cache_equals_without(student, mixer, layers):
    """Beam search reorders the cache rows every step; recomputing every beam from scratch must agree."""
    model = student(mixer, layers)
    ids, mask = left_pad([prompt_ids(6, seed=3)[0], prompt_ids(4, seed=4)[0]])
    kw = dict(attention_mask=mask, num_beams=3, num_return_sequences=2, max_new_tokens=6, do_sample=False,
              return_dict_in_generate=True, output_scores=True, pad_token_id=0)
    cached = model.generate(ids, use_cache=True, **kw)
    fresh = model.generate(ids, use_cache=False, **kw)
    assert torch.equal(cached.sequences, fresh.sequences)
    torch.testing.assert_close(cached.sequences_scores, fresh.sequences_scores, atol=1e-4, rtol=1e-4)
    assert cached.sequences.shape == (4, ids.shape[1] + 6)


@pytest.mark.parametrize("mixer,layers", SOME_VARIANTS, ids=SOME_VARIANT_IDS)
def test_sampling_with_cache_equals_without(student, mixer, layers):
    model = student(mixer, layers)
    ids = prompt_ids(5, seed=7, batch=2)
    kw = dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, max_new_tokens=10)
    torch.manual_seed(123)
    cached = model.generate(ids, use_cache=True, **kw)
    torch.manual_seed(123)
    fresh = model.generate(ids, use_cache=False, **kw)
    assert torch.equal(cached, fresh)
    torch.manual_seed(124)
    other = model.generate(ids, use_cache=True, **kw)
    assert not torch.equal(cached, other), "sampling ignored the seed"


def test_top_k_one_sampling_is_greedy(student):
    model = student("retention")
    ids = prompt_ids(5, seed=8)
    greedy = model.generate(ids, max_new_tokens=10, do_sample=False)
    sampled = model.generate(ids, max_new_tokens=10, do_sample=True, top_k=1, temperature=0.5)
    assert torch.equal(greedy, sampled)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox"])
def test_other_skeletons_left_padding_and_greedy(family):
    """Learned positions (GPT-2) and parallel residual with partial rotary (GPT-NeoX), as retention hybrids:
    left-padded batches equal each prompt alone, and cached greedy decoding equals full re-forwards."""
    from generation_helpers import build_student

    from tiny import tiny_donor

    model, _ = build_student(tiny_donor(family, seed=1), "retention", (1,))
    prompts = [prompt_ids(n, seed=20 + n)[0] for n in (6, 2)]
    ids, mask = left_pad(prompts)
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    batch = model.generate(ids, attention_mask=mask, **kw)
    for b, p in enumerate(prompts):
        alone = model.generate(p[None], **kw)
        assert torch.equal(batch[b, ids.shape[1]:], alone[0, len(p):]), f"prompt {b}"
        ref, _ = greedy_reference(model, p[None], 6)
        assert torch.equal(alone, ref)

"""The retrieval tasks of the long-context evaluation (passkey, needles, associative recall): prompts are seeded and
exactly as long as asked, the scoring is right on hand-made answers, a model that copies by induction solves them
while a random one does not, and a tiny student runs them through its recurrent decode path."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from long_helpers import CopyConfig, CopyModel

import xatl
from tiny import tiny_donor
from xatl.eval.long.config import LongContextConfig
from xatl.eval.long.generate import build_prompt, encode, filler_haystack, greedy_continuation
from xatl.eval.long.mqar import mqar_sample, plot_mqar, run_mqar, split_pool, word_pool
from xatl.eval.long.niah import VARIANTS, niah_prompt, plot_niah, run_niah, score_niah
from xatl.eval.long.passkey import (
    MAX_NEW_TOKENS,
    NEEDLE,
    passkey_prompt,
    plot_passkey,
    run_passkey,
    score_passkey,
)

TEXT = ("Rivers carry water from the hills to the sea. Along the way they cut valleys and feed farms! Some run dry "
        "in summer? Others flood each spring.\nPeople build bridges and mills beside them. ") * 6


@pytest.fixture(scope="module")
def copy_model():
    return CopyModel(CopyConfig(vocab_size=99)).eval()


@pytest.fixture(scope="module")
def random_model():
    return tiny_donor("llama", max_position_embeddings=1024)


def _valid_json(result: dict) -> None:
    json.dumps(result, allow_nan=False)
    assert {"task", "settings", "summary", "results", "documents", "seconds"} <= set(result)


# ---------------------------------------------------------------------- prompts
@pytest.mark.parametrize("use_text", [False, True])
def test_passkey_prompt_is_seeded_exact_and_at_depth(tokenizer, use_text):
    docs = [encode(tokenizer, TEXT)] if use_text else None
    a, key = passkey_prompt(tokenizer, 600, 0.5, seed=0, index=0, haystack=docs)
    again, key_again = passkey_prompt(tokenizer, 600, 0.5, seed=0, index=0, haystack=docs)
    other, key_other = passkey_prompt(tokenizer, 600, 0.5, seed=1, index=0, haystack=docs)
    assert (a.ids, key) == (again.ids, key_again)
    assert a.ids != other.ids and key != key_other
    assert len(a.ids) == 600 - MAX_NEW_TOKENS
    needle = encode(tokenizer, NEEDLE.format(key=key))
    start = a.needle_starts[0]
    assert a.ids[start:start + len(needle)] == needle
    assert a.haystack["kind"] == ("text" if use_text else "filler")
    for depth in (0.0, 0.3, 1.0):
        p, _ = passkey_prompt(tokenizer, 900, depth, seed=0, index=0, haystack=docs)
        head = len(encode(tokenizer, "There is an important info hidden inside a lot of irrelevant text. Find it and "
                                     "memorize them. I will quiz you about the important information there."))
        hay = len(p.ids) - head - len(needle) - len(encode(tokenizer, " What is the pass key? The pass key is"))
        assert abs(p.needle_starts[0] - (head + depth * hay)) <= 45      # within about half a sentence


def test_build_prompt_places_several_needles_and_refuses_too_short(tokenizer):
    import random

    from xatl.errors import ConfigError

    needles = [(0.8, encode(tokenizer, " X1.")), (0.2, encode(tokenizer, " X2."))]
    p = build_prompt(tokenizer, 300, encode(tokenizer, "Head."), needles, encode(tokenizer, " Tail?"),
                     random.Random(0))
    assert len(p.ids) == 300 and p.needle_starts == sorted(p.needle_starts)
    assert tokenizer.decode(p.ids[p.needle_starts[0]:p.needle_starts[0] + 4]) == " X2."
    assert 0.1 < p.depths[0] < 0.35 and 0.7 < p.depths[1] < 0.95
    with pytest.raises(ConfigError, match="too short"):
        build_prompt(tokenizer, 10, encode(tokenizer, "Head."), needles, encode(tokenizer, " Tail?"),
                     random.Random(0))


def test_filler_is_the_classic_one_cut_to_length(tokenizer):
    hay = filler_haystack(tokenizer, 100)
    assert len(hay.ids) == 100
    assert tokenizer.decode(hay.ids).startswith(" The grass is green. The sky is blue. The sun is yellow.")
    assert hay.ends[0] == 0 and all(tokenizer.decode(hay.ids[:e]).endswith(".") for e in hay.ends[1:])


@pytest.mark.parametrize("variant", VARIANTS)
def test_niah_prompts_hold_every_needle(tokenizer, variant):
    p, asked, needles = niah_prompt(tokenizer, variant, 1000, 0.5, seed=0, index=3)
    again = niah_prompt(tokenizer, variant, 1000, 0.5, seed=0, index=3)
    assert (p.ids, asked) == (again[0].ids, again[1])
    assert niah_prompt(tokenizer, variant, 1000, 0.5, seed=0, index=4)[0].ids != p.ids
    text = tokenizer.decode(p.ids)
    for key, value, _ in needles:
        assert f"One of the special magic numbers for {key} is: {value}." in text
    assert len(asked) == (1 if variant in ("single", "multikey") else 4)
    assert len({k for k, _, _ in needles}) == (1 if variant in ("single", "multivalue") else 4)


def test_mqar_sample_layout(tokenizer):
    import random

    keys, values = split_pool(word_pool(tokenizer), seed=0)
    assert not set(keys) & set(values)
    s = mqar_sample(tokenizer, keys, values, 6, 200, random.Random(0))
    t = mqar_sample(tokenizer, keys, values, 6, 200, random.Random(0))
    assert s == t and len(s["ids"]) == 200
    filler = set(s["ids"][12:-12])
    for pos, value in zip(s["positions"], s["expected"]):
        assert s["ids"][pos] in keys and s["ids"][pos + 1] == value and s["ids"][pos] not in filler
    assert s["ids"][:12] == [t for kv in zip(s["keys"], s["values"]) for t in kv]


def test_word_pool_of_a_bpe_tokenizer_is_space_led_single_tokens(tmp_path):
    from xatl.data import train_tokenizer
    from xatl.eval.long.niah import ADJECTIVES, NOUNS

    words = ADJECTIVES + NOUNS                     # over 64 words: the pool takes the space-led ones
    texts = [" ".join(words[(i + j) % len(words)] for j in range(12)) for i in range(0, 4 * len(words), 3)]
    tok = train_tokenizer(texts, 1500, tmp_path / "tok", min_frequency=1)
    pool = word_pool(tok)
    assert len(pool) >= 64
    for i in pool:
        text = tok.decode([i])
        assert text.startswith(" ") and text[1:].isalpha() and tok.encode(text, add_special_tokens=False) == [i]


# ---------------------------------------------------------------------- scoring
def test_passkey_scoring_on_hand_made_answers():
    assert score_passkey(" 12345.", "12345")
    assert score_passkey("12345 is the key", "12345")
    assert not score_passkey(" 1234", "12345")
    assert not score_passkey(" 123456", "12345")
    assert not score_passkey(" 54321. 12345", "12345")          # the first number counts
    assert not score_passkey(" the key", "12345")


def test_niah_scoring_exact_and_partial():
    assert score_niah(" 1234567.", ["1234567"]) == (True, 1.0)
    assert score_niah(" 123456", ["1234567"]) == (False, 0.0)
    assert score_niah(" 1111111, 2222222 and 3", ["1111111", "2222222", "3333333", "4444444"]) == (False, 0.5)
    assert score_niah("4444444 3333333 2222222 1111111", ["1111111", "2222222", "3333333", "4444444"]) == (True, 1.0)


# ---------------------------------------------------------------------- sanity by construction
CFG = LongContextConfig(lengths=(400, 700), max_length=700, depths=(0.0, 0.5, 1.0), samples=6, mqar_pairs=(4, 8),
                        chunk=128)


def test_copy_model_solves_passkey_and_a_random_model_does_not(tokenizer, copy_model, random_model, tmp_path):
    solved = run_passkey(copy_model, tokenizer, CFG, progress=False)
    _valid_json(solved)
    assert solved["summary"]["accuracy"] == {"400": 1.0, "700": 1.0, "all": 1.0}
    assert solved["summary"]["samples"]["all"] == 6 * 2 == len(solved["documents"]["prompts"])
    assert solved["summary"]["cells"]["700"] == {"0.0": 1.0, "0.5": 1.0, "1.0": 1.0}     # the depths in turn
    assert sorted(r["depth"] for r in solved["results"] if r["length"] == 400) == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    failed = run_passkey(random_model, tokenizer, CFG, progress=False)
    assert failed["summary"]["accuracy"]["all"] == 0.0
    assert failed["summary"]["accuracy_stderr"]["all"] == 0.0
    assert failed["summary"]["state_bytes"]["700"] > failed["summary"]["state_bytes"]["400"] > 0   # a KV cache
    plot_passkey(solved, tmp_path / "passkey.png")
    assert (tmp_path / "passkey.png").stat().st_size > 0


def test_copy_model_solves_single_and_multikey_needles(tokenizer, copy_model, tmp_path):
    cfg = LongContextConfig(lengths=(900,), max_length=900, depths=(0.0, 0.5, 1.0), samples=12)
    result = run_niah(copy_model, tokenizer, cfg, progress=False)
    assert result["summary"]["samples"]["single"]["900"] == 3                  # the four variants in turn
    _valid_json(result)
    acc = result["summary"]["accuracy"]
    assert acc["single"]["900"] == 1.0 and acc["multikey"]["900"] == 1.0
    assert result["summary"]["single_by_depth"]["900"] == {"0.0": 1.0, "0.5": 1.0, "1.0": 1.0}
    assert result["summary"]["recall"]["multivalue"]["900"] >= 0.25      # it copies the nearest value at least
    plot_niah(result, tmp_path / "niah.png")
    assert (tmp_path / "niah.png").stat().st_size > 0


def test_copy_model_solves_mqar_and_a_random_model_is_near_chance(tokenizer, copy_model, random_model, tmp_path):
    solved = run_mqar(copy_model, tokenizer, CFG, progress=False)
    _valid_json(solved)
    assert solved["summary"]["accuracy"] == {"4": {"400": 1.0, "700": 1.0, "all": 1.0},
                                             "8": {"400": 1.0, "700": 1.0, "all": 1.0}}
    assert solved["summary"]["accuracy_by_length"] == {"400": 1.0, "700": 1.0}
    assert solved["summary"]["samples"]["4"]["400"] == 3                       # the pair counts in turn
    failed = run_mqar(random_model, tokenizer, CFG, progress=False)
    assert failed["summary"]["accuracy"]["8"]["all"] <= 0.25
    plot_mqar(solved, tmp_path / "mqar.png")
    assert (tmp_path / "mqar.png").stat().st_size > 0


def test_lengths_past_the_context_limit_are_skipped(tokenizer):
    short = tiny_donor("llama", max_position_embeddings=512)
    result = run_passkey(short, tokenizer, CFG, progress=False)
    assert "700" in result["summary"]["skipped"] and "512" in result["summary"]["skipped"]["700"]
    assert {r["length"] for r in result["results"]} == {400}


# ---------------------------------------------------------------------- a student through its decode path
@pytest.fixture(scope="module")
def student():
    donor = tiny_donor("llama", max_position_embeddings=256)
    cfg = xatl.student_config(donor.config, mixer="lolcats", mixer_options={"window": 16, "chunk_size": 8})
    model, _ = xatl.transfer(donor, cfg, seed=0)
    return model.eval()


def _spy_mixers(model) -> list[tuple[int, bool]]:
    """Record (T, state given) of every mixer call of ``model``."""
    calls = []
    for layer in model.model.layers:
        forward = layer.mixer.forward

        def spy(x, ctx, state=None, use_cache=False, _forward=forward):
            calls.append((x.shape[1], state is not None))
            return _forward(x, ctx, state=state, use_cache=use_cache)

        layer.mixer.forward = spy
    return calls


def test_student_decodes_recurrently(tokenizer, student):
    calls = _spy_mixers(student)
    try:
        prompt, _ = passkey_prompt(tokenizer, 400, 0.5, seed=0, index=0)
        out = greedy_continuation(student, tokenizer, prompt.ids, 5)
    finally:
        for layer in student.model.layers:
            del layer.mixer.forward
    layers = len(student.model.layers)
    assert calls[:layers] == [(len(prompt.ids), False)] * layers                 # one prefill of the prompt
    assert calls[layers:] == [(1, True)] * (layers * (len(out.ids) - 1))        # then one recurrent step per token
    assert out.cache_tokens == len(prompt.ids) + len(out.ids) - 1 and out.cache_bytes > 0


def test_student_runs_every_task_past_its_trained_length(tokenizer, student):
    cfg = LongContextConfig(lengths=(750, 1000), max_length=1000, depths=(0.5,), samples=1, mqar_pairs=(4,),
                            chunk=128)
    calls = _spy_mixers(student)
    try:
        results = [run_passkey(student, tokenizer, cfg, progress=False),
                   run_niah(student, tokenizer, dataclasses.replace(cfg, samples=2), variants=("single", "multiquery"),
                            progress=False),
                   run_mqar(student, tokenizer, cfg, progress=False)]
    finally:
        for layer in student.model.layers:
            del layer.mixer.forward
    for result in results:
        _valid_json(result)
        assert not result["summary"]["skipped"] and result["summary"]["context_limit"] is None
    assert results[0]["summary"]["state_bytes"]["1000"] == results[0]["summary"]["state_bytes"]["750"]   # constant
    assert (1, True) in calls                                                   # generation stepped recurrently
    assert {r["length"] for r in results[2]["results"]} == {750, 1000}
    assert torch.is_grad_enabled()


def test_recall_predictions_equal_the_full_logits_with_and_without_logits_to_keep(random_model):
    from transformers import LlamaForCausalLM

    from xatl.eval.long.mqar import predictions_at

    class NoLogitsToKeep(LlamaForCausalLM):          # a forward without logits_to_keep: the chunked backbone path
        def forward(self, input_ids=None, **kwargs):
            return super().forward(input_ids=input_ids, **kwargs)

    other = NoLogitsToKeep(random_model.config).eval()
    other.load_state_dict(random_model.state_dict())
    ids = torch.randint(3, 98, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    positions = [5, 130, 131, 255, 299]
    with torch.no_grad():
        full = random_model(torch.tensor([ids])).logits[0, positions].argmax(-1).tolist()
    assert predictions_at(random_model, ids, positions, chunk=64) == full
    assert predictions_at(other, ids, positions, chunk=64) == full

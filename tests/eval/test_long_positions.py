"""Perplexity by position (``xatl.eval.long``): bucketing, chunked losses equal to full logits, bounded memory, the
long held-out documents, the context limit and the state bytes."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

import xatl
from tiny import tiny_donor
from xatl.errors import ConfigError
from xatl.eval.long import LongContextConfig
from xatl.eval.long.documents import long_documents
from xatl.eval.long.nll import token_nll
from xatl.eval.long.positions import bucket_sums, position_buckets, run_ppl_position, summarise
from xatl.eval.long.state import context_limit, linear_cost
from xatl.eval.suite import GROUPS, LONG_TASKS, check_suite, parse_tasks

WORDS = ("the river ran past the mill and the miller counted sacks of grain while rain fell on the roof of an old "
         "barn near the road").split()


def texts(n: int, words: int = 40, seed: int = 0) -> list[str]:
    """``n`` distinct pseudo-English documents of ``words`` words."""
    g = torch.Generator().manual_seed(seed)
    return [f"Doc {i}: " + " ".join(WORDS[j] for j in torch.randint(len(WORDS), (words,), generator=g).tolist())
            for i in range(n)]


def student(mixer: str, attention_layers=(), **donor_overrides):
    donor = tiny_donor("llama", max_position_embeddings=512, **donor_overrides)
    torch.manual_seed(0)
    model, _ = xatl.transfer(donor, xatl.student_config(donor.config, mixer=mixer,
                                                        attention_layers=list(attention_layers)))
    return model.eval()


# ------------------------------------------------------------------ settings and task names

def test_config_derives_lengths_and_refuses_bad_ones():
    assert LongContextConfig().lengths == (512, 1024, 2048, 4096, 8192)
    assert LongContextConfig(max_length=3000).lengths == (512, 1024, 2048, 3000)
    assert LongContextConfig(max_length=128).lengths == (128,)
    with pytest.raises(ConfigError, match="lengths"):
        LongContextConfig(max_length=1024, lengths=(512, 2048))
    with pytest.raises(ConfigError, match="depths"):
        LongContextConfig(depths=(1.5,))
    with pytest.raises(ConfigError, match="samples"):
        LongContextConfig(samples=0)


def test_all_leaves_out_long_tasks_and_long_names_them(tmp_path):
    assert not set(LONG_TASKS) & set(parse_tasks("all"))
    assert parse_tasks("long") == list(LONG_TASKS) == ["ppl_position", "passkey", "niah", "mqar"]
    assert parse_tasks(None) == list(GROUPS["all"])
    assert check_suite("ppl_position,passkey") is None            # no benchmark file needed


# ------------------------------------------------------------------ buckets

def test_position_buckets():
    assert position_buckets(1024) == [(1, 63), (64, 255), (256, 511), (512, 1023)]
    assert position_buckets(16384)[-2:] == [(4096, 8191), (8192, 16383)]
    assert position_buckets(3000)[-1] == (2048, 2999)
    assert position_buckets(100) == [(1, 63), (64, 99)]
    assert position_buckets(16) == [(1, 15)]


def test_bucket_sums_on_hand_made_losses():
    nll = torch.arange(1, 300, dtype=torch.float32)        # the loss at position p is p
    sums = bucket_sums(nll, position_buckets(300))
    assert sums == [(sum(range(1, 64)), 63), (sum(range(64, 256)), 192), (sum(range(256, 300)), 44)]


def test_bucketed_loss_equals_unbucketed_loss():
    g = torch.Generator().manual_seed(0)
    docs = [torch.rand(999, generator=g) * 8 for _ in range(3)]
    buckets = position_buckets(1000)
    pairs = [bucket_sums(d, buckets) for d in docs]
    s = summarise([[x for x, _ in p] for p in pairs], [[c for _, c in p] for p in pairs], ["a", "b", "c", "d"])
    whole = torch.cat(docs).double()
    assert s["nll"]["all"] == pytest.approx(whole.mean().item(), rel=1e-12)
    assert s["tokens"]["all"] == whole.numel()
    assert sum(s["nll"][k] * s["tokens"][k] for k in "abcd") == pytest.approx(whole.sum().item(), rel=1e-12)


def test_summary_standard_error_and_interval():
    s = summarise([[2.0], [4.0]], [[2], [2]], ["x"])       # document means 1 and 2
    assert s["nll"]["x"] == 1.5 and s["nll_stderr"]["x"] == pytest.approx(0.5)
    assert s["perplexity"]["x"] == pytest.approx(math.exp(1.5))
    lo, hi = s["perplexity_ci95"]["x"]
    assert lo == pytest.approx(math.exp(1.5 - 1.96 * 0.5), rel=1e-3) and hi > s["perplexity"]["x"]
    one = summarise([[2.0]], [[2]], ["x"])
    assert one["nll_stderr"]["x"] is None and one["perplexity_ci95"]["x"] is None


# ------------------------------------------------------------------ chunked losses

MODELS = {"llama": lambda: tiny_donor("llama", max_position_embeddings=512),
          "gemma3": lambda: tiny_donor("gemma3", max_position_embeddings=512),
          "retention": lambda: student("retention"),
          "lolcats": lambda: student("lolcats"),
          "lolcats+attn1": lambda: student("lolcats", (1,))}


@pytest.mark.parametrize("name", list(MODELS))
def test_chunked_nll_equals_full_logits(name):
    model = MODELS[name]()
    ids = torch.randint(1, 99, (1, 150), generator=torch.Generator().manual_seed(1))
    nll, _ = token_nll(model, ids, chunk=32)
    with torch.no_grad():
        full = F.cross_entropy(model(input_ids=ids).logits[0, :-1].float(), ids[0, 1:], reduction="none")
    assert nll.shape == (149,)
    torch.testing.assert_close(nll, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["llama", "retention"])
def test_memory_is_bounded_by_the_chunk(name):
    """No call of the LM head or the backbone sees more than ``chunk`` positions: no (T, V) logits at once."""
    model, seen = MODELS[name](), []
    hooks = [model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(("head", o.shape))),
             model.base_model.register_forward_pre_hook(lambda m, a, kw: seen.append(("trunk", kw["input_ids"].shape)),
                                                        with_kwargs=True)]
    ids = torch.randint(1, 99, (1, 200))
    token_nll(model, ids, chunk=32, measure_at=(50, 200))
    for h in hooks:
        h.remove()
    assert {w for w, _ in seen} == {"head", "trunk"}
    assert max(shape[-2] for w, shape in seen if w == "head") <= 32
    assert max(shape[-1] for w, shape in seen if w == "trunk") <= 32


def test_state_bytes_grow_for_softmax_and_stay_for_recurrent():
    llama = tiny_donor("llama", max_position_embeddings=512)
    ids = torch.randint(1, 99, (1, 200))
    _, kv = token_nll(llama, ids, chunk=64, measure_at=(64, 200))
    c = llama.config
    head_dim = c.hidden_size // c.num_attention_heads
    assert kv == {n: 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * n * 4 for n in (64, 200)}
    _, state = token_nll(student("retention"), ids, chunk=64, measure_at=(64, 200))
    assert state[64] == state[200] > 0


def test_context_limit_by_trait():
    assert context_limit(tiny_donor("llama", max_position_embeddings=256).config)[0] == 256
    pure, hybrid = student("retention"), student("retention", (1,))
    assert linear_cost(pure.config) and context_limit(pure.config)[0] is None
    assert not linear_cost(hybrid.config) and context_limit(hybrid.config)[0] == 512


# ------------------------------------------------------------------ documents

def test_long_documents_are_exact_and_deterministic(tokenizer):
    data = texts(12)
    docs, report = long_documents(tokenizer, 128, 5, seed=0, data=data)
    again, _ = long_documents(tokenizer, 128, 5, seed=0, data=data)
    other, _ = long_documents(tokenizer, 128, 5, seed=1, data=data)
    assert [d.ids for d in docs] == [d.ids for d in again]
    assert [d.parts for d in docs] != [d.parts for d in other]
    assert all(len(d.ids) == 128 and d.ids[0] == tokenizer.eos_token_id for d in docs)
    assert all(tokenizer.decode(d.ids[1:]) == d.text for d in docs)        # the text is what is scored
    given = {f"{next(iter(report['sources']))}#{i}": t for i, t in enumerate(data)}
    order = list(dict.fromkeys(p for d in docs for p in d.parts))             # the stream's order
    stream, at = "\n\n".join(given[p] for p in order), 0
    for d in docs:          # each starts at a paragraph (here: a document), after the one before: nothing twice
        assert d.text.startswith(given[d.parts[0]][:20])
        found = stream.find(d.text, at)
        assert found >= at
        at = found + len(d.text)
    assert report["built"] == len(docs) and report["documents"][0]["sha256"] == docs[0].sha256


def test_long_documents_use_only_the_validation_split(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("XATL_HOME", str(tmp_path / "home"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(400, words=60)))
    from xatl.data import DataConfig, load_documents

    split = load_documents(DataConfig(sources=[str(corpus)]))
    held, trained = set(split["validation"]["id"]), set(split["train"]["id"])
    docs, report = long_documents(tokenizer, 128, 4, sources=[str(corpus)])
    assert docs and all(set(d.parts) <= held and not set(d.parts) & trained for d in docs)
    assert "validation split" in report["split"]


# ------------------------------------------------------------------ the task

def test_run_ppl_position_skips_past_the_limit(tokenizer):
    model = tiny_donor("llama", max_position_embeddings=100)
    cfg = LongContextConfig(max_length=160, documents=2, chunk=48)
    res = run_ppl_position(model, tokenizer, cfg, data=texts(10), progress=False)
    s = res["summary"]
    assert s["scored_length"] == 100 and s["context_limit"] == 100
    assert list(s["skipped"]) == ["64-159"] and res["results"]["buckets"] == ["1-63"]
    assert s["tokens"]["all"] == 2 * 63 and s["perplexity"]["all"] == s["perplexity"]["1-63"]
    assert s["state_bytes"] == {"160": None} and "160" in s["state_skipped"]
    with pytest.raises(ConfigError, match="shorter than the first position bucket"):
        run_ppl_position(tiny_donor("llama", max_position_embeddings=40), tokenizer, cfg, data=texts(10),
                         progress=False)
    assert json.loads(json.dumps(res, allow_nan=False)) == res


def test_run_ppl_position_matches_full_forward(tokenizer):
    model = student("lolcats")
    cfg = LongContextConfig(max_length=128, documents=2, chunk=40)
    res = run_ppl_position(model, tokenizer, cfg, data=texts(10), progress=False)
    total = 0.0
    for doc in res["documents"]["documents"]:
        ids = torch.tensor([doc["ids"]])
        with torch.no_grad():
            total += F.cross_entropy(model(input_ids=ids).logits[0, :-1], ids[0, 1:], reduction="sum").item()
    assert res["summary"]["nll"]["all"] == pytest.approx(total / (2 * 127), rel=1e-5)
    assert res["summary"]["state_kind"] == "recurrent state" and res["summary"]["context_limit"] is None


# ------------------------------------------------------------------ real assets

@pytest.mark.real
@pytest.mark.slow
def test_real_long_documents_and_smollm2_chunked_loss(smollm2):
    """sotu and pydoc hold enough held-out text for the default documents at 8k tokens, only from validation; and
    SmolLM2's chunked loss equals its full logits' on the first 1024 tokens of one."""
    from xatl.data import DataConfig, validation_documents

    model, tok = smollm2
    cfg = LongContextConfig()
    docs, report = long_documents(tok, cfg.max_length, cfg.documents, cfg.seed)
    assert len(docs) == cfg.documents and all(len(d.ids) == cfg.max_length for d in docs)
    held = {i for name in ("sotu", "pydoc") for i in validation_documents(DataConfig(sources=[name]))["id"]}
    assert {p for d in docs for p in d.parts} <= held and {d.source for d in docs} == {"sotu", "pydoc"}
    ids = torch.tensor([docs[0].ids[:1024]])
    nll, _ = token_nll(model, ids, chunk=256)
    with torch.no_grad():
        full = F.cross_entropy(model(input_ids=ids).logits[0, :-1], ids[0, 1:], reduction="none")
    torch.testing.assert_close(nll, full, rtol=1e-4, atol=1e-4)

"""The built-in scorer against hand computation on a tiny model: acc, acc_norm, LAMBADA, held-out perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_helpers import LAMBADA, MC_DOCS, WINOGRANDE

from xatl.eval import evaluate, evaluate_path, load_task, relative_scores, weights_sha256
from xatl.eval.perplexity import heldout_perplexity, windows
from xatl.eval.scoring import PairEncoder


def ll_by_hand(model, tok, context: str, continuation: str) -> tuple[float, bool]:
    """Character tokenizer: the context's tokens are a prefix of the whole text's, so no boundary subtleties."""
    ctx, whole = tok.encode(context), tok.encode(context + continuation)
    assert whole[:len(ctx)] == ctx
    with torch.no_grad():
        logp = F.log_softmax(model(torch.tensor([whole])).logits[0].double(), -1)      # (T, V)
    cont = whole[len(ctx):]
    rows = logp[len(ctx) - 1:len(whole) - 1]                                            # predict each cont token
    ll = sum(rows[j, t].item() for j, t in enumerate(cont))
    return ll, all(rows[j].argmax().item() == t for j, t in enumerate(cont))


def mc_by_hand(model, tok, task: str):
    """(acc, acc_norm, per-doc lls) computed directly from the docs of the fixture."""
    accs, norms, all_lls = [], [], []
    if task == "winogrande":
        docs = [([f"{pre} {o}" for o in opts], [" " + rest] * 2, [f"{pre} {o}" for o in opts], gold)
                for pre, opts, rest, gold in WINOGRANDE]       # lm-eval: the choices of a multiple-input doc are contexts
    else:
        docs = [([ctx] * len(ch), [" " + c for c in ch], ch, gold) for ctx, ch, gold in MC_DOCS[task]]
    for contexts, conts, choices, gold in docs:
        lls = [ll_by_hand(model, tok, c, x)[0] for c, x in zip(contexts, conts)]
        accs.append(float(np.argmax(lls) == gold))
        norms.append(float(np.argmax([ll / len(c) for ll, c in zip(lls, choices)]) == gold))
        all_lls.append(lls)
    return np.mean(accs), np.mean(norms), all_lls


@pytest.mark.parametrize("task", ["piqa", "arc_easy", "hellaswag", "winogrande"])
def test_multiple_choice_matches_hand_computation(task, tiny_model, tokenizer, suite):
    res = evaluate(tiny_model, tokenizer, task, suite=suite, log_samples=True, progress=False, batch_size=3)
    entry = res["tasks"][task]
    acc, acc_norm, lls = mc_by_hand(tiny_model, tokenizer, task)
    assert entry["metrics"]["acc"] == pytest.approx(acc)
    assert entry["metrics"]["acc_norm"] == pytest.approx(acc_norm)
    for sample, expected in zip(entry["samples"], lls):
        np.testing.assert_allclose(sample["loglikelihoods"], expected, rtol=1e-5, atol=1e-4)
    assert entry["documents"] == len(lls)
    assert entry["chance"] == pytest.approx(np.mean([1 / len(x) for x in lls]))


def test_acc_norm_differs_from_acc_on_the_fixture(tiny_model, tokenizer, suite):
    """The fixture is able to tell acc from acc_norm (so the tests above check the normalisation)."""
    res = evaluate(tiny_model, tokenizer, "piqa,winogrande", suite=suite, progress=False, log_samples=True)
    preds = [(s["pred"], s["pred_norm"]) for t in res["tasks"].values() for s in t["samples"]]
    assert any(p != q for p, q in preds)


def test_lambada_matches_hand_computation(tiny_model, tokenizer, suite):
    res = evaluate(tiny_model, tokenizer, ["lambada"], suite=suite, progress=False)["tasks"]["lambada"]
    by_hand = [ll_by_hand(tiny_model, tokenizer, ctx, " " + w) for ctx, w in LAMBADA]
    assert res["metrics"]["acc"] == pytest.approx(np.mean([g for _, g in by_hand]))
    assert res["metrics"]["perplexity"] == pytest.approx(math.exp(-np.mean([ll for ll, _ in by_hand])), rel=1e-4)


def test_batching_order_and_repeat_do_not_change_results(tiny_model, tokenizer, suite):
    kw = dict(suite=suite, progress=False, log_samples=True)
    a = evaluate(tiny_model, tokenizer, "piqa,arc_easy,lambada", batch_size=1, **kw)
    b = evaluate(tiny_model, tokenizer, "piqa,arc_easy,lambada", batch_size=5, **kw)
    c = evaluate(tiny_model, tokenizer, "piqa,arc_easy,lambada", batch_size=5, **kw)
    for task in a["tasks"]:
        assert a["tasks"][task]["metrics"]["acc"] == b["tasks"][task]["metrics"]["acc"]
        assert b["tasks"][task]["samples"] == c["tasks"][task]["samples"]       # deterministic
    for sa, sb in zip(a["tasks"]["piqa"]["samples"], b["tasks"]["piqa"]["samples"]):
        np.testing.assert_allclose(sa["loglikelihoods"], sb["loglikelihoods"], rtol=1e-5)


def test_limit_takes_the_first_documents(tiny_model, tokenizer, suite):
    res = evaluate(tiny_model, tokenizer, "arc_easy", suite=suite, limit=2, progress=False, log_samples=True)
    entry = res["tasks"]["arc_easy"]
    assert entry["documents"] == 2 and [s["doc_id"] for s in entry["samples"]] == [0, 1]
    assert res["settings"]["limit"] == 2


def test_results_record_versions_and_model_hash(tiny_dir, suite):
    res = evaluate_path(tiny_dir, "piqa", suite=suite, progress=False)
    version = res["tasks"]["piqa"]["version"]
    assert version == load_task("piqa", suite).version
    assert version["variant"] == "rc_0shot" and len(version["sha256"]) == 64
    assert res["model"]["sha256"] == weights_sha256(tiny_dir) and res["model"]["sha256_of"] == "weight files"
    assert res["model"]["parameters"] > 0 and res["model"]["model_type"] == "llama"


def test_pair_encoder_moves_trailing_spaces_and_handles_empty_context(tokenizer):
    enc = PairEncoder(tokenizer)
    ctx, cont = enc("ab ", "c")
    assert tokenizer.decode(ctx) == "ab" and tokenizer.decode(cont) == " c"
    ctx, cont = enc("", "xy")
    assert ctx == [tokenizer.eos_token_id] and tokenizer.decode(cont) == "xy"


@pytest.mark.parametrize("n, window, stride", [(2, 4, None), (11, 4, None), (11, 4, 2), (9, 4, 4), (30, 8, 3)])
def test_windows_score_every_token_once(n, window, stride):
    tokens = list(range(100, 100 + n))
    pieces = windows(tokens, window, stride)
    scored = [t for p, k in pieces for t in p[-k:]]
    assert scored == tokens[1:]
    assert all(len(p) <= window + 1 and 0 < k <= (stride or window) and k < len(p) for p, k in pieces)


def test_heldout_perplexity_matches_hand_computation(tiny_model, tokenizer):
    texts = ["The quick brown fox jumps over the lazy dog.", "Hello, world!"]
    res = heldout_perplexity(tiny_model, tokenizer, texts, window=16, batch_size=2, progress=False)
    nll, count = 0.0, 0
    for text in texts:        # lm-eval's rolling windows: blocks of 16 predictions, inputs of (up to) 16 tokens
        ids = tokenizer.encode(text)
        first = min(16, len(ids))
        pieces = [([tokenizer.eos_token_id] + ids[:first - 1], ids[:first])]
        predicted = len(pieces[0][1])
        while predicted < len(ids):
            n = min(len(ids) - predicted, 16)
            end = predicted + n
            pieces.append((ids[end - 17:end - 1], ids[end - n:end]))
            predicted = end
        for inputs, targets in pieces:
            with torch.no_grad():
                logits = tiny_model(torch.tensor([inputs])).logits[0, -len(targets):]
            nll += F.cross_entropy(logits.double(), torch.tensor(targets), reduction="sum").item()
            count += len(targets)
    assert res["tokens"] == count == sum(len(t) for t in texts)
    assert res["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert res["bits_per_byte"] == pytest.approx(nll / math.log(2) / sum(len(t.encode()) for t in texts), rel=1e-5)
    whole = heldout_perplexity(tiny_model, tokenizer, texts, window=64, progress=False)
    assert whole["perplexity"] != pytest.approx(res["perplexity"], rel=1e-6)        # the window matters


def test_ppl_task_reads_jsonl(tiny_model, tokenizer, tmp_path):
    data = tmp_path / "held.jsonl"
    data.write_text('{"text": "some held out text"}\n{"text": "and more of it"}\n{"text": "ignored by limit"}\n')
    res = evaluate(tiny_model, tokenizer, "ppl", data=data, limit=2, progress=False)["tasks"]["ppl"]
    expected = heldout_perplexity(tiny_model, tokenizer, ["some held out text", "and more of it"], progress=False)
    assert res["documents"] == 2 and res["metrics"]["perplexity"] == pytest.approx(expected["perplexity"])
    assert res["version"]["window"] == 1024 and len(res["version"]["sha256"]) == 64


def test_relative_scores():
    def results(acc, ppl, docs=10, sha="a"):
        return {"tasks": {"piqa": {"metrics": {"acc": acc, "acc_norm": acc}, "chance": 0.5, "documents": docs,
                                   "version": {"sha256": sha}},
                          "ppl": {"metrics": {"perplexity": ppl}, "documents": docs, "version": {"sha256": sha}}}}
    rel, skipped = relative_scores(results(0.6, 30.0), results(0.7, 20.0))
    assert rel["piqa"]["acc"] == pytest.approx(0.5) and rel["ppl"]["perplexity_ratio"] == pytest.approx(1.5)
    assert not skipped
    rel, skipped = relative_scores(results(0.6, 30.0), results(0.7, 20.0, docs=20))
    assert not rel and set(skipped) == {"piqa", "ppl"}

"""Associative recall, MQAR-style (Arora et al. 2023, "Zoology"), in the model's own vocabulary
(``xatl eval --tasks mqar``).

Keys and values are ordinary words of the tokenizer: token ids that decode to one alphabetic word (with a leading
space where the vocabulary has enough such words, as BPE vocabularies do) and encode back to that same single id,
so the probe works with any tokenizer. The words are shuffled (seeded) and split in half: key words and value
words. A sample of N pairs and a context of L tokens is::

    [BOS] k1 v1 k2 v2 ... kN vN   <filler: L - 4N tokens>   kσ1 vσ1 kσ2 vσ2 ... kσN vσN

(σ a seeded permutation: every key is queried once). Keys and values are different words; none of them occurs in the
filler. Scoring is teacher-forced, as in Zoology: one forward pass over the L tokens, and a query is right when the
model's top-1 next-token prediction at a query key kσj is its value vσj. Only the N query positions go through the
LM head (``logits_to_keep``), so no (L, V) logits are ever held; the forward pass is the prefill a generation of
the same length runs (for models without ``logits_to_keep``: the backbone in chunks of ``cfg.chunk`` tokens with
its cache, ``nll.backbone_step``).

Per length: ``cfg.samples`` samples, the pair counts of ``cfg.mqar_pairs`` in turn; accuracy = right queries / all
queries, its standard error over the samples' accuracies; chance = 1 / the number of value words. ``accuracy_by_length``:
the same over every pair count.
"""

from __future__ import annotations

import inspect
import logging
import time

import torch
from tqdm.auto import tqdm

from ...errors import ConfigError
from .config import LongContextConfig
from .generate import (
    cell_rng,
    filler_haystack,
    length_skip,
    make_haystack,
    mean_stderr,
    plot_accuracy_by_length,
    prefix_ids,
)
from .state import context_limit

log = logging.getLogger(__name__)

MIN_SPACED_WORDS = 64
"""Below this many space-led word tokens (" apple"), the pool takes bare word tokens ("apple") instead."""


def word_pool(tokenizer) -> list[int]:
    """Sorted ids of single-token words (module docstring): space-led words where there are at least
    :data:`MIN_SPACED_WORDS`, else bare ones."""
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    texts = tokenizer.batch_decode([[i] for i in ids])
    spaced = [(i, t) for i, t in zip(ids, texts) if t[:1] == " " and _word(t[1:])]
    candidates = spaced if len(spaced) >= MIN_SPACED_WORDS else [(i, t) for i, t in zip(ids, texts) if _word(t)]
    if not candidates:
        return []
    again = tokenizer([t for _, t in candidates], add_special_tokens=False)["input_ids"]
    return sorted(i for (i, _), e in zip(candidates, again) if list(e) == [i])


def _word(text: str) -> bool:
    return text.isascii() and text.isalpha()


def split_pool(pool: list[int], seed: int) -> tuple[list[int], list[int]]:
    """(key words, value words): the pool shuffled with ``seed`` and cut in half."""
    words = list(pool)
    cell_rng("mqar", seed, "pool").shuffle(words)
    half = len(words) // 2
    return sorted(words[:half]), sorted(words[half:])


def mqar_sample(tokenizer, keys_pool: list[int], values_pool: list[int], pairs: int, length: int, rng,
                haystack=None) -> dict:
    """One sample: {"ids" (length,), "positions" (pairs,) of the query keys, "expected" (pairs,) value ids,
    "keys", "values", "order", "values_pool" (value words not in the filler), "haystack"}."""
    prefix = prefix_ids(tokenizer)
    n = length - len(prefix) - 4 * pairs
    if n < 0:
        raise ConfigError(f"a context of {length} tokens cannot hold {pairs} pairs twice ({4 * pairs} tokens)")
    hay = make_haystack(tokenizer, n, rng, haystack)
    used = set(hay.ids)
    free_keys, free_values = [k for k in keys_pool if k not in used], [v for v in values_pool if v not in used]
    if min(len(free_keys), len(free_values)) < pairs:
        raise ConfigError(f"{pairs} pairs need {pairs} key and value words, but the vocabulary has only "
                          f"{len(free_keys)} key and {len(free_values)} value words outside the filler")
    keys, values = rng.sample(free_keys, pairs), rng.sample(free_values, pairs)
    order = rng.sample(range(pairs), pairs)
    context = [t for kv in zip(keys, values) for t in kv]
    query = [t for j in order for t in (keys[j], values[j])]
    start = len(prefix) + 2 * pairs + n
    return {"ids": prefix + context + hay.ids + query, "positions": [start + 2 * j for j in range(pairs)],
            "expected": [values[j] for j in order], "keys": keys, "values": values, "order": order,
            "values_pool": len(free_values), "haystack": hay.source}


@torch.no_grad()
def predictions_at(model, ids: list[int], positions: list[int], chunk: int) -> list[int]:
    """Top-1 next-token predictions (K,) at ``positions`` of ``ids`` (T,), one causal pass. A model whose forward
    takes ``logits_to_keep`` (transformers causal LMs, xatl students) is asked for those K logits only (its prefill
    then costs what a generation's does); other models' backbones (``base_model``) run in chunks of ``chunk``
    tokens with their cache, and only the K hidden states go through the LM head."""
    device = next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=device)                   # (1, T)
    want = torch.tensor(positions, device=device)                              # (K,)
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(input_ids=x, logits_to_keep=want, use_cache=False).logits[0].argmax(-1).tolist()
    from .nll import backbone_step

    picked, cache = [], None
    for start in range(0, len(ids), chunk):
        hidden, cache = backbone_step(model, x[:, start:start + chunk], cache)    # (1, n, D)
        inside = want[(want >= start) & (want < start + hidden.shape[1])]
        picked.append(hidden[0, inside - start])                                   # (k, D)
    logits = model.get_output_embeddings()(torch.cat(picked))                      # (K, V); softcaps keep the argmax
    return logits.argmax(-1).tolist()


def _too_few_words(tokenizer, keys_pool: list[int], values_pool: list[int], pairs: int) -> str | None:
    """Why the filler leaves fewer than ``pairs`` key or value words (None when it does not)."""
    used = set(filler_haystack(tokenizer, 256).ids)
    free = min(sum(k not in used for k in keys_pool), sum(v not in used for v in values_pool))
    if free < pairs:
        return f"the vocabulary has only {free} key or value words outside the filler, fewer than {pairs} pairs"
    return None


def run_mqar(model, tokenizer, cfg: LongContextConfig, *, haystack: list[list[int]] | None = None,
             progress: bool = True) -> dict:
    """Associative-recall accuracy of ``model`` per (pairs of ``cfg.mqar_pairs``, length of ``cfg.lengths``),
    ``cfg.samples`` samples each (module docstring) -> {"task", "settings", "summary", "results", "documents",
    "seconds"}. ``haystack``: token lists of real text to pad with instead of the filler."""
    t0 = time.perf_counter()
    model.eval()
    limit, why = context_limit(model.config)
    pool = word_pool(tokenizer)
    keys_pool, values_pool = split_pool(pool, cfg.seed)
    skipped = {(N, L): length_skip(L, limit, why, len(prefix_ids(tokenizer)) + 4 * N) or
               (_too_few_words(tokenizer, keys_pool, values_pool, N) if haystack is None else None)
               for N in cfg.mqar_pairs for L in cfg.lengths}
    jobs = [(cfg.mqar_pairs[i % len(cfg.mqar_pairs)], L, i) for L in cfg.lengths for i in range(cfg.samples)]
    jobs = [(N, L, i) for N, L, i in jobs if not skipped[N, L]]
    results, documents = [], []
    for N, L, i in tqdm(jobs, desc="mqar", unit="sample", disable=not progress, leave=False):
        s = mqar_sample(tokenizer, keys_pool, values_pool, N, L, cell_rng("mqar", cfg.seed, N, L, i), haystack)
        got = predictions_at(model, s["ids"], s["positions"], cfg.chunk)
        right = [g == e for g, e in zip(got, s["expected"])]
        results.append({"pairs": N, "length": L, "index": i, "prompt_tokens": len(s["ids"]),
                        "query_positions": s["positions"], "expected": s["expected"], "got": got,
                        "correct": right, "accuracy": sum(right) / N, "chance": 1 / s["values_pool"]})
        documents.append({"pairs": N, "length": L, "index": i, "keys": s["keys"], "values": s["values"],
                          "order": s["order"], "answer": s["expected"], "ids": s["ids"], "haystack": s["haystack"]})
    summary = summarise_mqar(results, cfg)
    summary.update(skipped={f"{N}/{L}": s for (N, L), s in skipped.items() if s}, context_limit=limit,
                   word_pool=len(pool), key_words=len(keys_pool), value_words=len(values_pool))
    for key, s in summary["skipped"].items():
        log.warning("mqar: pairs/length %s skipped (%s)", key, s)
    settings = dict(cfg.as_dict(), tokenizer=getattr(tokenizer, "name_or_path", None),
                    haystack="filler" if haystack is None else f"text ({len(haystack)} documents)",
                    layout="[prefix] k1 v1 ... kN vN <filler> (the N keys in a seeded order, each with its value)",
                    scoring="teacher-forced: the top-1 next-token prediction at each query key is its value")
    return {"task": "mqar", "settings": settings, "summary": summary, "results": results,
            "documents": {"prompts": documents}, "seconds": round(time.perf_counter() - t0, 3)}


def summarise_mqar(results: list[dict], cfg: LongContextConfig) -> dict:
    """{"accuracy", "accuracy_stderr", "samples"}: each {pairs: {length | "all": value}} (accuracy: right queries /
    queries; its standard error over the samples' accuracies); "chance": {pairs: mean 1 / value words};
    "accuracy_by_length", "accuracy_by_length_stderr": {length: value} over every pair count."""
    out = {k: {} for k in ("accuracy", "accuracy_stderr", "samples", "chance")}
    for N in cfg.mqar_pairs:
        rows_n = [r for r in results if r["pairs"] == N]
        groups = {str(L): [r for r in rows_n if r["length"] == L] for L in cfg.lengths}
        groups["all"] = rows_n
        for key, rows in groups.items():
            if not rows:
                continue
            out["accuracy"].setdefault(str(N), {})[key] = sum(sum(r["correct"]) for r in rows) / (N * len(rows))
            out["accuracy_stderr"].setdefault(str(N), {})[key] = mean_stderr([r["accuracy"] for r in rows])
            out["samples"].setdefault(str(N), {})[key] = len(rows)
        if rows_n:
            out["chance"][str(N)] = sum(r["chance"] for r in rows_n) / len(rows_n)
    out["accuracy_by_length"], out["accuracy_by_length_stderr"] = {}, {}
    for L in cfg.lengths:
        rows = [r for r in results if r["length"] == L]
        if rows:
            out["accuracy_by_length"][str(L)] = sum(sum(r["correct"]) for r in rows) / sum(r["pairs"] for r in rows)
            out["accuracy_by_length_stderr"][str(L)] = mean_stderr([r["accuracy"] for r in rows])
    return out


def plot_mqar(result: dict, path) -> None:
    """A PNG of recall accuracy against context length, one line per number of pairs, with standard-error bars and
    the chance level."""
    s, samples = result["summary"], result["settings"].get("samples")
    plot_accuracy_by_length(s, path, label=lambda pairs: f"{pairs} pairs", ylabel="top-1 recall (%)",
                            title=f"associative recall ({samples} samples per length, the pair counts in turn)",
                            chance=max(s["chance"].values()) if s["chance"] else None)

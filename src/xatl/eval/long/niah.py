"""Needles in a haystack, RULER-style (Hsieh et al. 2024), generated locally from a seed (``xatl eval --tasks niah``).

A needle is ``One of the special magic numbers for {key} is: {value}.``: a key made of two words (``bright-lamp``,
from the word lists below) and a 7-digit value. Needles sit in real text (the ``haystack`` token lists given to
:func:`run_niah`, e.g. long held-out documents) or, without it, in the passkey filler. Four variants:

* ``single``: one needle; its key is asked for.
* ``multikey``: four needles with different keys; one of them is asked for (the others are distractors).
* ``multivalue``: four needles with the same key and different values; all four values must be returned.
* ``multiquery``: four needles with different keys; all four are asked for, all four values must be returned.

The question repeats the needle's own words as the start of the answer (``... One of the special magic numbers for
bright-lamp is:``), as the passkey prompt does, so that a base model that can retrieve only has to continue. The
model continues greedily through ``generate()`` (prefill, then cached/recurrent decode). A sample is right when
every asked value is in the continuation (as a whole number); ``recall`` is the fraction of asked values found.

Per length: ``cfg.samples`` prompts, the variants in turn (prompt i: variant ``i % 4``); the (first) needle's depth
runs through ``cfg.depths`` in turn within a variant, the other needles sit at seeded random depths. Summary: accuracy per variant and length (binomial standard error), the
mean recall, and accuracy per depth of the single needle.
"""

from __future__ import annotations

import logging
import re
import time

from tqdm.auto import tqdm

from .config import LongContextConfig
from .generate import (
    binomial_stderr,
    build_prompt,
    cell_rng,
    encode,
    fixed_tokens,
    greedy_continuation,
    length_skip,
    mean_stderr,
    plot_accuracy_by_length,
)
from .state import context_limit, state_kind

log = logging.getLogger(__name__)

VARIANTS = ("single", "multikey", "multivalue", "multiquery")
NEEDLES = 4
"""Needles of the multi-needle variants (RULER's defaults: 4 keys, 4 values, 4 queries)."""
VALUE_DIGITS = 7
HEAD = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you "
        "about the numbers afterwards.")
NEEDLE = " One of the special magic numbers for {key} is: {value}."
ASK_ONE = (" What is the special magic number for {key} mentioned in the provided text? One of the special magic "
           "numbers for {key} is:")
ASK_ALL = (" What are all the special magic numbers for {keys} mentioned in the provided text? The special magic "
           "numbers for {keys} mentioned in the provided text are:")
ADJECTIVES = ("amber", "bold", "brave", "bright", "calm", "clever", "cold", "crisp", "dark", "deep", "eager", "early",
              "fair", "fancy", "gentle", "giant", "golden", "grand", "green", "happy", "hidden", "humble", "icy",
              "jolly", "kind", "lively", "loud", "lucky", "mellow", "misty", "noble", "odd", "pale", "proud", "quick",
              "quiet", "rapid", "rare", "royal", "rusty", "shy", "silent", "silver", "sleepy", "smooth", "swift",
              "tall", "tiny", "vivid", "warm", "wild", "wise")
NOUNS = ("anchor", "apple", "arrow", "badger", "basket", "beacon", "bell", "bridge", "candle", "canyon", "castle",
         "cedar", "comet", "coral", "desk", "dragon", "engine", "falcon", "feather", "forest", "garden", "glacier",
         "hammer", "harbor", "island", "jacket", "kettle", "ladder", "lamp", "lantern", "meadow", "mirror", "needle",
         "orchid", "otter", "pebble", "pepper", "piano", "planet", "pocket", "quarry", "river", "rocket", "saddle",
         "tiger", "tower", "tulip", "valley", "violin", "wagon", "walnut", "window")


def niah_keys(rng, n: int) -> list[str]:
    """``n`` different two-word keys (``adjective-noun``)."""
    pairs = rng.sample(range(len(ADJECTIVES) * len(NOUNS)), n)
    return [f"{ADJECTIVES[p // len(NOUNS)]}-{NOUNS[p % len(NOUNS)]}" for p in pairs]


def niah_values(rng, n: int) -> list[str]:
    """``n`` different 7-digit values."""
    return [str(v) for v in rng.sample(range(10 ** (VALUE_DIGITS - 1), 10 ** VALUE_DIGITS), n)]


def _join(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


def niah_sample(variant: str, rng) -> tuple[list[tuple[str, str]], list[str], str]:
    """(needles as (key, value), the values asked for, the question) of one sample of ``variant``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown needle variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    count = 1 if variant == "single" else NEEDLES
    keys = niah_keys(rng, 1 if variant == "multivalue" else count)
    values = niah_values(rng, count)
    if variant == "multivalue":
        needles = [(keys[0], v) for v in values]
        return needles, values, ASK_ALL.format(keys=keys[0])
    needles = list(zip(keys, values))
    if variant == "multiquery":
        return needles, values, ASK_ALL.format(keys=_join(keys))
    return needles, values[:1], ASK_ONE.format(key=keys[0])      # single, multikey: the first needle is asked for


def answer_tokens(variant: str) -> int:
    """Tokens generated: every asked value (digits, one token each at most) with separators, and some room."""
    return (1 if variant in ("single", "multikey") else NEEDLES) * (VALUE_DIGITS + 3) + 2


def niah_prompt(tokenizer, variant: str, length: int, depth: float, seed: int, index: int, haystack=None):
    """(Prompt of ``length - answer_tokens(variant)`` tokens, asked values, needles as (key, value, depth))."""
    rng = cell_rng("niah", seed, variant, length, index)
    needles, asked, question = niah_sample(variant, rng)
    depths = [depth] + [rng.random() for _ in needles[1:]]
    parts = [(d, encode(tokenizer, NEEDLE.format(key=k, value=v))) for d, (k, v) in zip(depths, needles)]
    prompt = build_prompt(tokenizer, length - answer_tokens(variant), encode(tokenizer, HEAD), parts,
                          encode(tokenizer, question), rng, haystack)
    return prompt, asked, [(k, v, d) for (k, v), d in zip(needles, depths)]


def score_niah(text: str, expected: list[str]) -> tuple[bool, float]:
    """(every expected value is a number in ``text``, the fraction of them that is)."""
    found = set(re.findall(r"\d+", text))
    hits = sum(v in found for v in expected)
    return hits == len(expected), hits / len(expected)


def shortest_context(tokenizer, variant: str) -> int:
    """An upper bound of the tokens of a ``variant`` prompt without haystack, answer included: its question and
    needles written with the longest words of the key lists."""
    key = f"{max(ADJECTIVES, key=len)}-{max(NOUNS, key=len)}"
    count = 1 if variant == "single" else NEEDLES
    question = ASK_ONE.format(key=key) if variant in ("single", "multikey") else ASK_ALL.format(
        keys=_join([key] * (NEEDLES if variant == "multiquery" else 1)))
    needle = encode(tokenizer, NEEDLE.format(key=key, value="9" * VALUE_DIGITS))
    return (fixed_tokens(tokenizer, encode(tokenizer, HEAD), [needle] * count, encode(tokenizer, question))
            + answer_tokens(variant) + 2 * count)


def run_niah(model, tokenizer, cfg: LongContextConfig, *, variants=VARIANTS, haystack: list[list[int]] | None = None,
             progress: bool = True) -> dict:
    """Needle accuracy of ``model`` per variant and length of ``cfg.lengths``, ``cfg.samples`` prompts per length
    over the variants in turn (module docstring) -> {"task", "settings", "summary", "results", "documents", "seconds"}. ``haystack``:
    token lists of real text (None: the passkey filler)."""
    t0 = time.perf_counter()
    model.eval()
    limit, why = context_limit(model.config)
    skipped = {(v, L): length_skip(L, limit, why, shortest_context(tokenizer, v))
               for v in variants for L in cfg.lengths}
    jobs = [(variants[i % len(variants)], L, i) for L in cfg.lengths for i in range(cfg.samples)]
    jobs = [(v, L, i) for v, L, i in jobs if not skipped[v, L]]
    results, documents, state = [], [], {}
    for v, L, i in tqdm(jobs, desc="niah", unit="prompt", disable=not progress, leave=False):
        depth = cfg.depths[(i // len(variants)) % len(cfg.depths)]
        prompt, asked, needles = niah_prompt(tokenizer, v, L, depth, cfg.seed, i, haystack)
        out = greedy_continuation(model, tokenizer, prompt.ids, answer_tokens(v))
        state.setdefault(L, out.cache_bytes)
        correct, recall = score_niah(out.text, asked)
        results.append({"variant": v, "length": L, "index": i, "depth": depth, "prompt_tokens": len(prompt.ids),
                        "needle_starts": prompt.needle_starts, "needle_depths": prompt.depths, "expected": asked,
                        "got": out.text, "correct": correct, "recall": recall})
        documents.append({"variant": v, "length": L, "index": i, "needles": [list(n) for n in needles],
                          "answer": asked, "ids": prompt.ids, "haystack": prompt.haystack})
    summary = summarise_niah(results, variants, cfg)
    summary.update(skipped={f"{v}/{L}": s for (v, L), s in skipped.items() if s}, context_limit=limit,
                   state_kind=state_kind(model), state_bytes={str(L): b for L, b in state.items()})
    for key, s in summary["skipped"].items():
        log.warning("niah: %s skipped (%s)", key, s)
    settings = dict(cfg.as_dict(), tokenizer=getattr(tokenizer, "name_or_path", None), variants=list(variants),
                    needles=NEEDLES, haystack="filler" if haystack is None else f"text ({len(haystack)} documents)",
                    max_new_tokens={v: answer_tokens(v) for v in variants}, head=HEAD, needle=NEEDLE,
                    ask_one=ASK_ONE, ask_all=ASK_ALL,
                    scoring="every asked value is a number in the greedy continuation; recall: the fraction that is")
    return {"task": "niah", "settings": settings, "summary": summary, "results": results,
            "documents": {"prompts": documents}, "seconds": round(time.perf_counter() - t0, 3)}


def summarise_niah(results: list[dict], variants, cfg: LongContextConfig) -> dict:
    """{"accuracy", "accuracy_stderr", "recall", "recall_stderr", "samples"}: each {variant: {length | "all":
    value}}; "accuracy_by_length", "accuracy_by_length_stderr": {length: value} over every variant; "single_by_depth": {length:
    {depth: accuracy}} of the single needle."""
    out = {k: {} for k in ("accuracy", "accuracy_stderr", "recall", "recall_stderr", "samples")}
    for v in variants:
        rows_v = [r for r in results if r["variant"] == v]
        groups = {str(L): [r for r in rows_v if r["length"] == L] for L in cfg.lengths}
        groups["all"] = rows_v
        for key, rows in groups.items():
            if not rows:
                continue
            right = sum(r["correct"] for r in rows)
            recalls = [r["recall"] for r in rows]
            for name, value in (("accuracy", right / len(rows)), ("accuracy_stderr", binomial_stderr(right, len(rows))),
                                ("recall", sum(recalls) / len(rows)), ("recall_stderr", mean_stderr(recalls)),
                                ("samples", len(rows))):
                out[name].setdefault(v, {})[key] = value
    out["accuracy_by_length"], out["accuracy_by_length_stderr"] = {}, {}
    for L in cfg.lengths:
        rows = [r for r in results if r["length"] == L]
        if rows:
            right = sum(r["correct"] for r in rows)
            out["accuracy_by_length"][str(L)] = right / len(rows)
            out["accuracy_by_length_stderr"][str(L)] = binomial_stderr(right, len(rows))
    single = [r for r in results if r["variant"] == "single"]
    out["single_by_depth"] = {
        str(L): {str(d): _mean([r["correct"] for r in single if r["length"] == L and r["depth"] == d])
                 for d in cfg.depths}
        for L in cfg.lengths if any(r["length"] == L for r in single)}
    return out


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def plot_niah(result: dict, path) -> None:
    """A PNG of needle accuracy against context length, one line per variant, with standard-error bars."""
    samples = result["settings"].get("samples")
    plot_accuracy_by_length(result["summary"], path, label=str, ylabel="exact match (%)",
                            title=f"needles in a haystack ({samples} prompts per length, the variants in turn)")

"""Passkey retrieval (``xatl eval --tasks passkey``): a random 5-digit key hidden in filler text, then asked for.

A prompt of a context of L tokens (Mohtashami & Jaggi 2023, as LongLoRA and LoLA run it)::

    [BOS] There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz
    you about the important information there. The grass is green. The sky is blue. ... (filler)
    The pass key is 68236. Remember it. 68236 is the pass key.         <- at depth d of the filler
    ... (filler) What is the pass key? The pass key is

has exactly ``L - MAX_NEW_TOKENS`` tokens, so prompt and answer fit in L positions. The model continues it greedily
through ``generate()`` (prefill, then cached/recurrent decode) for :data:`MAX_NEW_TOKENS` tokens. It is right when
the first number in the continuation is the key (``" 68236."``: right; ``" 6823"`` or ``" 682361"``: wrong).

Grid: ``cfg.samples`` keys per length of ``cfg.lengths``, the depths of ``cfg.depths`` taken in turn. Lengths past the
model's context limit are skipped (and reported so). Summary: accuracy per length (with the binomial standard error
sqrt(p (1 - p) / n)) and over all, and per (length, depth) cell. Chance is 1 in 90,000.
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
)
from .state import context_limit, state_kind

log = logging.getLogger(__name__)

INTRO = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz "
         "you about the important information there.")
NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"
KEY_DIGITS = 5
MAX_NEW_TOKENS = 10
"""Tokens generated: the key (5 digits, one token each or fewer) with a space and a full stop, and some room."""
CHANCE = 1 / 90000


def passkey_key(rng) -> str:
    """A random 5-digit key (10000-99999)."""
    return str(rng.randrange(10 ** (KEY_DIGITS - 1), 10 ** KEY_DIGITS))


def score_passkey(text: str, key: str) -> bool:
    """Whether the first number in ``text`` is ``key``."""
    m = re.search(r"\d+", text)
    return m is not None and m.group() == key


def passkey_prompt(tokenizer, length: int, depth: float, seed: int, index: int, haystack=None):
    """(Prompt of ``length - MAX_NEW_TOKENS`` tokens, key) of sample ``index`` of cell (length, depth)."""
    rng = cell_rng("passkey", seed, length, depth, index)
    key = passkey_key(rng)
    needle = encode(tokenizer, NEEDLE.format(key=key))
    prompt = build_prompt(tokenizer, length - MAX_NEW_TOKENS, encode(tokenizer, INTRO), [(depth, needle)],
                          encode(tokenizer, QUESTION), rng, haystack)
    return prompt, key


def run_passkey(model, tokenizer, cfg: LongContextConfig, *, haystack: list[list[int]] | None = None,
                progress: bool = True) -> dict:
    """Passkey accuracy of ``model`` over ``cfg.lengths``, ``cfg.samples`` keys each at ``cfg.depths`` in turn
    (module docstring)
    -> {"task", "settings", "summary", "results", "documents", "seconds"}. ``haystack``: token lists of real text
    to hide the key in instead of the filler."""
    t0 = time.perf_counter()
    model.eval()
    limit, why = context_limit(model.config)
    fixed = fixed_tokens(tokenizer, encode(tokenizer, INTRO), [encode(tokenizer, NEEDLE.format(key="0" * 5))],
                         encode(tokenizer, QUESTION)) + MAX_NEW_TOKENS + 4
    skipped = {L: length_skip(L, limit, why, fixed) for L in cfg.lengths}
    cells = [(L, cfg.depths[i % len(cfg.depths)], i) for L in cfg.lengths if not skipped[L]
             for i in range(cfg.samples)]
    results, documents, state = [], [], {}
    for L, d, i in tqdm(cells, desc="passkey", unit="prompt", disable=not progress, leave=False):
        prompt, key = passkey_prompt(tokenizer, L, d, cfg.seed, i, haystack)
        out = greedy_continuation(model, tokenizer, prompt.ids, MAX_NEW_TOKENS)
        state.setdefault(L, out.cache_bytes)
        results.append({"length": L, "depth": d, "index": i, "prompt_tokens": len(prompt.ids),
                        "needle_start": prompt.needle_starts[0], "needle_depth": prompt.depths[0],
                        "expected": key, "got": out.text, "correct": score_passkey(out.text, key)})
        documents.append({"length": L, "depth": d, "index": i, "answer": key, "ids": prompt.ids,
                          "haystack": prompt.haystack})
    summary = summarise_passkey(results, cfg)
    summary.update(skipped={str(L): s for L, s in skipped.items() if s}, context_limit=limit,
                   state_kind=state_kind(model), state_bytes={str(L): b for L, b in state.items()})
    for L, s in summary["skipped"].items():
        log.warning("passkey: length %s skipped (%s)", L, s)
    settings = dict(cfg.as_dict(), tokenizer=getattr(tokenizer, "name_or_path", None), max_new_tokens=MAX_NEW_TOKENS,
                    haystack="filler" if haystack is None else f"text ({len(haystack)} documents)",
                    intro=INTRO, needle=NEEDLE, question=QUESTION,
                    scoring="the first number of the greedy continuation equals the key")
    return {"task": "passkey", "settings": settings, "summary": summary, "results": results,
            "documents": {"prompts": documents}, "seconds": round(time.perf_counter() - t0, 3)}


def summarise_passkey(results: list[dict], cfg: LongContextConfig) -> dict:
    """{"accuracy": {length: p, "all": p}, "accuracy_stderr": same keys, "samples": same keys, "cells":
    {length: {depth: p}}, "chance"}; lengths without results are left out."""
    acc, err, n, cells = {}, {}, {}, {}
    groups = {str(L): [r for r in results if r["length"] == L] for L in cfg.lengths}
    groups["all"] = results
    for key, rows in groups.items():
        if not rows:
            continue
        right = sum(r["correct"] for r in rows)
        acc[key], err[key], n[key] = right / len(rows), binomial_stderr(right, len(rows)), len(rows)
        if key != "all":
            cells[key] = {str(d): _mean([r["correct"] for r in rows if r["depth"] == d]) for d in cfg.depths}
    return {"accuracy": acc, "accuracy_stderr": err, "samples": n, "cells": cells, "chance": CHANCE}


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def plot_passkey(result: dict, path) -> None:
    """A PNG heatmap of passkey accuracy: lengths (rows) x depths (columns), each cell annotated."""
    plot_passkey_grid({"": result}, path)


def plot_passkey_grid(results: dict[str, dict], path) -> None:
    """One heatmap panel per ``{label: result of run_passkey}``, side by side (lengths x depths, cells annotated,
    skipped lengths marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(results.values()))["settings"]
    lengths, depths = [str(L) for L in first["lengths"]], [str(float(d)) for d in first["depths"]]
    width, height = 1.1 * max(3, len(depths)) + 1.2, 0.5 * max(3, len(lengths)) + 1.6
    fig, axes = plt.subplots(1, len(results), figsize=(width * len(results) + 1.2, height), dpi=120, squeeze=False)
    image = None
    for ax, (label, result) in zip(axes[0], results.items()):
        cells = result["summary"]["cells"]
        grid = [[_or_nan(cells.get(L, {}).get(d)) for d in depths] for L in lengths]        # (lengths, depths)
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto")
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                ax.text(c, r, "skipped" if v != v else f"{100 * v:.0f}%", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(depths)), [f"{float(d):.0%}" for d in depths])
        ax.set_yticks(range(len(lengths)), lengths)
        ax.set_xlabel("depth of the key")
        ax.set_title(label, fontsize=9)
    axes[0][0].set_ylabel("context length (tokens)")
    fig.suptitle(f"passkey accuracy ({first.get('samples')} keys per length, the depths in turn)", fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), label="accuracy")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _or_nan(value) -> float:
    return float("nan") if value is None else value

"""What the retrieval tasks (passkey, needles, recall) share: seeded haystacks and prompts built in token space, and
greedy generation of a few tokens through ``model.generate()``.

**Prompts in token space.** A prompt is ``prefix + head + haystack (with needles inserted) + tail``, each part a
list of token ids: ``prefix`` is what the tokenizer puts before a text (BOS, or nothing), ``head`` the instruction,
``tail`` the question. The haystack gets exactly the tokens left over, so a prompt has exactly the length asked
for. A needle goes at the sentence end of the haystack nearest to ``depth * len(haystack)`` (depth 0: right after
the head; 1: right before the question), so its true depth is off by at most half a sentence.

**Haystacks.** The classic passkey filler (:data:`FILLER`, its five sentences repeated; the same for every seed), or
real text: token lists given by the caller (e.g. long held-out documents), cut at a seeded document and offset.

**Generation** runs through ``model.generate()`` (greedy, batch 1): the prompt is prefilled in one call, then each
new token is one cached (for a student: recurrent) decode step. It works for transformers models and xatl
students alike.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

import torch

from ...errors import ConfigError

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
"""The classic passkey filler (Mohtashami & Jaggi 2023), repeated to fill the haystack."""
SENTENCE_ENDS = (".", "!", "?", "\n")
"""A real-text token whose text ends with one of these ends a sentence (a place to insert a needle)."""
DOCUMENT_SEPARATOR = "\n\n"
"""Joins the given documents when one is too short for the haystack."""


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def prefix_ids(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts before a text (e.g. [BOS]; [] for most BPE tokenizers)."""
    bare = encode(tokenizer, "a")
    full = list(tokenizer("a")["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start]
    return []


@dataclass
class Haystack:
    """``ids`` (n,) of filler or real text; ``ends``: sorted indices 0..n where a sentence ends (needles go there);
    ``source``: how it was made (JSON-able)."""

    ids: list[int]
    ends: list[int]
    source: dict = field(default_factory=dict)

    def insertion_point(self, depth: float) -> int:
        """The sentence end nearest to ``depth * n`` (the plain position when the text has no sentence end)."""
        target = round(depth * len(self.ids))
        if not self.ends:
            return target
        i = bisect.bisect_left(self.ends, target)
        near = [self.ends[j] for j in (i - 1, i) if 0 <= j < len(self.ends)]
        return min(near, key=lambda p: (abs(p - target), p))


def filler_haystack(tokenizer, n: int) -> Haystack:
    """``n`` tokens of :data:`FILLER`'s sentences (each with a leading space) repeated; the last one is cut."""
    sentences = [encode(tokenizer, " " + s.strip() + ".") for s in FILLER.split(".") if s.strip()]
    ids, ends = [], [0]
    while len(ids) < n:
        for s in sentences:
            ids.extend(s)
            ends.append(len(ids))
    return Haystack(ids[:n], [e for e in ends if e <= n], {"kind": "filler", "text": FILLER})


def text_haystack(tokenizer, n: int, documents: list[list[int]], rng: random.Random) -> Haystack:
    """``n`` tokens of real text: from a seeded document and offset on, joined to the next documents (with
    :data:`DOCUMENT_SEPARATOR`) where one runs out."""
    docs = [list(d) for d in documents if len(d)]
    if not docs:
        raise ConfigError("the real-text haystack needs at least one non-empty document")
    first = rng.randrange(len(docs))
    offset = rng.randrange(max(1, len(docs[first]) - n + 1))
    separator = encode(tokenizer, DOCUMENT_SEPARATOR)
    ids = docs[first][offset:offset + n]
    k = first
    while len(ids) < n:
        k = (k + 1) % len(docs)
        ids.extend(separator + docs[k])
    ids = ids[:n]
    texts = tokenizer.batch_decode([[t] for t in ids])
    ends = [0] + [i + 1 for i, t in enumerate(texts) if t.rstrip(" ").endswith(SENTENCE_ENDS)]
    return Haystack(ids, ends, {"kind": "text", "document": first, "offset": offset, "documents": len(docs)})


def make_haystack(tokenizer, n: int, rng: random.Random, documents: list[list[int]] | None = None) -> Haystack:
    """Real text when ``documents`` are given (token lists), else the classic filler."""
    return filler_haystack(tokenizer, n) if documents is None else text_haystack(tokenizer, n, documents, rng)


@dataclass
class Prompt:
    """A built prompt: ``ids`` (T,); where each needle starts (``needle_starts``, in order of depth) and its depth
    as a fraction of the prompt (``depths``); how the haystack was made."""

    ids: list[int]
    needle_starts: list[int]
    haystack: dict

    @property
    def depths(self) -> list[float]:
        return [s / len(self.ids) for s in self.needle_starts]


def fixed_tokens(tokenizer, head: list[int], needles: list[list[int]], tail: list[int]) -> int:
    """Tokens of a prompt that are not haystack."""
    return len(prefix_ids(tokenizer)) + len(head) + sum(map(len, needles)) + len(tail)


def build_prompt(tokenizer, length: int, head: list[int], needles: list[tuple[float, list[int]]], tail: list[int],
                 rng: random.Random, documents: list[list[int]] | None = None) -> Prompt:
    """A prompt of exactly ``length`` tokens: prefix + head + haystack with each (depth, needle ids) inserted +
    tail (module docstring). Raises ConfigError when the fixed parts alone are longer than ``length``."""
    n = length - fixed_tokens(tokenizer, head, [ids for _, ids in needles], tail)
    if n < 0:
        raise ConfigError(f"a prompt of {length} tokens is too short: its question and needles alone take "
                          f"{length - n} tokens")
    hay = make_haystack(tokenizer, n, rng, documents)
    start = prefix_ids(tokenizer) + list(head)
    ids, starts, cut = list(start), [], 0
    for depth, needle in sorted(needles, key=lambda x: x[0]):
        at = max(cut, hay.insertion_point(depth))
        ids.extend(hay.ids[cut:at])
        starts.append(len(ids))
        ids.extend(needle)
        cut = at
    ids.extend(hay.ids[cut:])
    ids.extend(tail)
    return Prompt(ids, starts, hay.source)


# ---------------------------------------------------------------------- generation
@dataclass
class Continuation:
    """A greedy continuation: its text and token ids, and the decoding cache at the end (bytes, tokens seen; None
    when the model kept no cache)."""

    text: str
    ids: list[int]
    cache_bytes: int | None
    cache_tokens: int | None


def pad_token_id(tokenizer) -> int | None:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def greedy_continuation(model, tokenizer, ids: list[int], max_new_tokens: int) -> Continuation:
    """Greedy ``model.generate()`` of up to ``max_new_tokens`` tokens after ``ids`` (T,), batch 1: one prefill of
    the prompt, then one cached decode step per token. Stops early at EOS."""
    from transformers import GenerationConfig

    from .state import cache_bytes

    device = next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=device)                  # (1, T)
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                              pad_token_id=pad_token_id(tokenizer), eos_token_id=tokenizer.eos_token_id,
                              bos_token_id=getattr(model.generation_config, "bos_token_id", None),
                              use_cache=getattr(model.generation_config, "use_cache", True),
                              return_dict_in_generate=True)
    out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=config)
    new = out.sequences[0, len(ids):].tolist()
    cache = getattr(out, "cache", None)
    seen = cache.get_seq_length() if cache is not None else None
    return Continuation(tokenizer.decode(new, skip_special_tokens=True), new,
                        cache_bytes(cache) if cache is not None else None, seen)


# ---------------------------------------------------------------------- shared summaries
def binomial_stderr(correct: int, n: int) -> float | None:
    """sqrt(p (1 - p) / n) of ``correct`` successes out of ``n`` (None for n = 0)."""
    if n == 0:
        return None
    p = correct / n
    return math.sqrt(p * (1 - p) / n)


def mean_stderr(values: list[float]) -> float | None:
    """Standard error of the mean of ``values`` (sample standard deviation / sqrt(n); None for fewer than 2)."""
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


def cell_rng(task: str, seed: int, *key) -> random.Random:
    """The random generator of one sample: a function of the task, the seed and the sample's cell and index only,
    so adding lengths or depths to a grid leaves every other sample as it was."""
    return random.Random("/".join(map(str, (task, seed, *key))))


def length_skip(length: int, limit: int | None, why: str, needed: int) -> str | None:
    """Why a context of ``length`` tokens cannot be run (None when it can): past the model's context ``limit``, or
    shorter than the ``needed`` tokens of the prompt's fixed parts and the answer."""
    if limit is not None and length > limit:
        return f"longer than the model's context limit of {limit} tokens ({why})"
    if length < needed:
        return f"shorter than the {needed} tokens that the task's fixed parts (question, needles or pairs, answer) take"
    return None


def plot_accuracy_by_length(summary: dict, path, *, label, ylabel: str, title: str, chance: float | None = None) -> None:
    """A PNG of accuracy (%) against context length (log2), one line per group of ``summary["accuracy"]``
    ({group: {length | "all": p}}) with its ``accuracy_stderr`` as bars; ``label(group)`` names a line; ``chance``:
    a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for group, by_length in summary["accuracy"].items():
        lengths = [k for k in by_length if k != "all"]
        ys = [100 * by_length[k] for k in lengths]
        err = [100 * (summary["accuracy_stderr"][group][k] or 0.0) for k in lengths]
        ax.errorbar([int(k) for k in lengths], ys, yerr=err, marker="o", capsize=3, label=label(group))
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_ylim(-5, 105)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

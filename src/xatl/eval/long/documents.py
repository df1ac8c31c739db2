"""Long held-out documents for perplexity by position: token lists of exactly ``length`` ids.

The default sources are the fetched corpora ``sotu`` (State of the Union addresses) and ``pydoc`` (the Python
documentation), whose documents run to thousands of tokens. Only their *validation* documents are read: the split
of :mod:`xatl.data.split` with :class:`~xatl.data.DataConfig`'s defaults (a hash of the text, ``val_fraction``
0.01, seed 0), which ``xatl heal`` and ``xatl train`` hold out, so no scored text was trained on.

The held-out documents *of one source* are joined with a blank line (``"\\n\\n"``) in a seeded order into one
stream of text, tokenized as running text; a long document is the prefix token (BOS, else EOS) followed by
``length - 1`` tokens of that stream, starting at the start of a paragraph. The next one starts at the first
paragraph after it ends, so no text is scored twice and none of it is wasted beyond a paragraph's tail. Sources
take turns (sotu, pydoc, sotu, ...) until ``count`` documents are built. The held-out text is limited: sotu and
pydoc hold about 44k SmolLM2 tokens of it, so about 5 documents of 8k tokens (2 of 16k): where more are asked for,
fewer are built and the report says so (``--data`` gives more).

    docs, report = long_documents(tokenizer, length=8192, count=8, seed=0)
    docs[0].ids            # 8192 token ids
    docs[0].parts          # ["sotu/2009-Obama", "sotu/1862-Lincoln"]: the held-out documents it joins

``data`` (a path, a list of strings or a Dataset, read as ``xatl eval --data``) replaces the corpora: its
documents are one source.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import DataError
from ..perplexity import read_documents
from ..scoring import prefix_token_id

log = logging.getLogger(__name__)

LONG_SOURCES = ("sotu", "pydoc")
"""The fetched corpora whose held-out documents are long (thousands of tokens)."""
SEPARATOR = "\n\n"
"""Joins held-out documents of one source into a long one."""


@dataclass(frozen=True)
class SourceDocument:
    """One held-out document: its stable id (``sotu/...``) and text."""

    id: str
    text: str


@dataclass
class LongDocument:
    """``length`` token ids (the prefix token first) cut from held-out documents of one source joined in order."""

    source: str
    ids: list[int]
    """(length,) token ids: the prefix token, then the first ``length - 1`` tokens of ``text``."""
    parts: list[str]
    """Ids of the held-out documents it holds (a part of), in order."""
    text: str
    """The text of ``ids[1:]`` (with a tokenizer that is not a fast one: the joined documents, also past the
    cut)."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def as_dict(self, full: bool = True) -> dict:
        """JSON-able; ``full``: with the token ids and the text, so the run can be redone exactly."""
        out = {"source": self.source, "parts": list(self.parts), "tokens": len(self.ids), "sha256": self.sha256}
        if full:
            out.update(ids=list(self.ids), text=self.text)
        return out


def held_out_documents(sources=LONG_SOURCES) -> dict[str, list[SourceDocument]]:
    """{source: its validation documents} of fetched corpora (or data files) ``sources``, read and split as
    ``xatl.data`` does for training; the corpora are fetched when missing."""
    from ...data import DataConfig, validation_documents

    out = {}
    for name in sources:
        ds = validation_documents(DataConfig(sources=[name]))
        out[name] = [SourceDocument(str(i), t) for i, t in zip(ds["id"], ds["text"]) if t.strip()]
    return out


def given_documents(data) -> dict[str, list[SourceDocument]]:
    """{description: documents} of ``--data`` (a .jsonl/.txt path or directory, a list of strings, a Dataset)."""
    texts, where = read_documents(data)
    return {where: [SourceDocument(f"{where}#{i}", t) for i, t in enumerate(texts) if t.strip()]}


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False, verbose=False)


def join_source(tokenizer, name: str, docs: list[SourceDocument], length: int, prefix: int,
                rng: random.Random) -> Iterator[LongDocument]:
    """Long documents of ``length`` ids from one source (module docstring): its documents joined in a seeded
    order into one stream, cut into windows of ``length - 1`` tokens, each starting at a paragraph start after the
    end of the one before. A tokenizer without character offsets (not a fast one) cuts whole documents instead."""
    order = sorted(docs, key=lambda d: d.id)           # independent of the order the reader returned them in
    rng.shuffle(order)
    if not getattr(tokenizer, "is_fast", False):
        yield from _whole_documents(tokenizer, name, order, length, prefix)
        return
    text = SEPARATOR.join(d.text for d in order)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    token_starts = [a for a, _ in offsets]
    paragraphs = [bisect.bisect_left(token_starts, m.end()) for m in re.finditer(r"\n\n+", text)]
    spans, at = [], 0
    for d in order:                                    # (first, end) characters of each document in the stream
        spans.append((at, at + len(d.text)))
        at += len(d.text) + len(SEPARATOR)
    start, n = 0, length - 1
    while start + n <= len(ids):
        a, b = offsets[start][0], offsets[start + n - 1][1]
        parts = [d.id for d, (lo, hi) in zip(order, spans) if lo < b and hi > a]
        yield LongDocument(name, [prefix] + ids[start:start + n], parts, text[a:b])
        start = next((t for t in paragraphs if t >= start + n), len(ids))


def _whole_documents(tokenizer, name: str, order: list[SourceDocument], length: int,
                     prefix: int) -> Iterator[LongDocument]:
    """Documents joined whole until ``length`` tokens; the rest of the last one is not used."""
    parts: list[SourceDocument] = []
    estimate = 1
    for doc in order:
        parts.append(doc)
        estimate += len(_encode(tokenizer, doc.text)) + 1
        if estimate < length:
            continue
        text = SEPARATOR.join(p.text for p in parts)
        ids = [prefix] + _encode(tokenizer, text)       # the joined text: token boundaries as in running text
        if len(ids) >= length:
            yield LongDocument(name, ids[:length], [p.id for p in parts], text)
            parts, estimate = [], 1


def long_documents(tokenizer, length: int, count: int, seed: int = 0, *, data=None,
                   sources=LONG_SOURCES) -> tuple[list[LongDocument], dict]:
    """(up to ``count`` long documents of exactly ``length`` ids, a JSON-able report of where they come from).

    Fewer documents than ``count`` are returned (and the report says so) when the held-out text runs out; none at
    all raises DataError."""
    prefix = prefix_token_id(tokenizer)
    if prefix is None:
        raise DataError("perplexity by position needs a BOS or EOS token to condition the first token; the "
                        "tokenizer has neither")
    held = given_documents(data) if data is not None else held_out_documents(sources)
    streams = [join_source(tokenizer, name, docs, length, prefix, random.Random(f"{seed}/{name}"))
               for name, docs in held.items()]
    out: list[LongDocument] = []
    while streams and len(out) < count:                # sources take turns
        for stream in list(streams):
            doc = next(stream, None)
            if doc is None:
                streams.remove(stream)
            elif len(out) < count:
                out.append(doc)
    if not out:
        raise DataError(f"no held-out text of {length} tokens in {', '.join(held)} (even joined within a source); "
                        "lower --max-length or pass longer --data")
    if len(out) < count:
        log.warning("only %d long documents of %d tokens could be built (asked for %d): the held-out text ran out",
                    len(out), length, count)
    return out, _report(out, held, length, count, data)


def _report(docs: list[LongDocument], held: dict, length: int, count: int, data) -> dict:
    from ..perplexity import describe_source

    if data is None:
        from ...data import DataConfig

        cfg = DataConfig()
        split = f"validation split of xatl.data (val_fraction {cfg.val_fraction}, seed {cfg.seed}): never trained on"
    else:
        split = f"given documents ({describe_source(data)})"
    return {"length": length, "requested": count, "built": len(docs), "split": split, "separator": SEPARATOR,
            "sources": {name: {"held_out_documents": len(d), "joined": sum(len(x.parts) for x in docs
                                                                           if x.source == name)}
                        for name, d in held.items()},
            "documents": [d.as_dict(full=False) for d in docs]}

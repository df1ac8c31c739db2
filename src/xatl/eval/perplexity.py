"""Held-out perplexity and bits per byte on validation documents.

Each document is scored on its own: its tokens (no special tokens) follow one prefix token (BOS, else EOS), so
that its first token is predicted too. The document is cut into windows of ``window`` input tokens; with the
default ``stride == window`` the windows are disjoint blocks: each token is predicted once, from the tokens of its
own block and the one before it, except in the last, shorter block, whose input is filled up to ``window`` tokens
with earlier ones (exactly lm-eval's ``loglikelihood_rolling`` windows). With ``stride < window`` each window
predicts only its last ``stride`` tokens, from ``window`` tokens of context where the document has them (a
sliding window).

    perplexity    = exp(total NLL / scored tokens)
    bits_per_byte = total NLL / ln 2 / UTF-8 bytes of the documents
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import DataError
from .scoring import prefix_token_id

DEFAULT_WINDOW = 1024


def windows(tokens: list[int], window: int, stride: int | None = None) -> list[tuple[list[int], int]]:
    """Split a token list (prefix first) into (input+target slice, number of scored tokens at its end).

    Every token but the first is scored exactly once. Each slice holds at most ``window + 1`` tokens (the model
    sees all but the last).
    """
    stride = window if stride is None else stride
    if not 0 < stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}), got {stride}")
    out = []
    start = 1                                    # index of the first token not yet scored
    while start < len(tokens):
        end = min(len(tokens), start + stride)   # score tokens[start:end]
        lo = max(0, end - window - 1)
        out.append((tokens[lo:end], end - start))
        start = end
    return out


def read_documents(source) -> tuple[list[str], str]:
    """(texts, description) from a ``datasets.Dataset`` (column ``text``), a list of strings, a .jsonl file
    (field ``text`` per line), a .txt file (one document), or a directory of .txt/.jsonl files."""
    if isinstance(source, (list, tuple)):
        return [str(t) for t in source], f"{len(source)} given documents"
    if hasattr(source, "column_names"):
        if "text" not in source.column_names:
            raise DataError(f"validation documents have no 'text' column (columns: {source.column_names})")
        return list(source["text"]), "validation documents"
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())
        texts = [t for f in files for t in read_documents(f)[0]]
    elif path.suffix == ".jsonl" and path.is_file():
        texts = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        texts.append(json.loads(line)["text"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise DataError(f"{path}:{n} is not a JSON object with a 'text' field") from None
    elif path.is_file():
        texts = [path.read_text(encoding="utf-8")]
    else:
        raise DataError(f"held-out data {str(path)!r} does not exist; pass a .jsonl (field 'text'), .txt or a "
                        "directory of them")
    return texts, str(path)


def default_documents():
    """The held-out validation documents of the default training data (``xatl.data``)."""
    try:
        from ..data import DataConfig, validation_documents
    except ImportError:
        raise DataError("the default validation documents need xatl.data; pass --data FILE.jsonl instead") from None
    return validation_documents(DataConfig(sources=["default"]))


def texts_sha256(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


@torch.no_grad()
def heldout_perplexity(model, tokenizer, texts: list[str], *, window: int = DEFAULT_WINDOW,
                       stride: int | None = None, batch_size: int = 8, progress: bool = True) -> dict:
    """-> {"perplexity", "bits_per_byte", "tokens", "bytes", "documents", "nll"} over ``texts``."""
    texts = [t for t in texts if t]
    if not texts:
        raise DataError("no non-empty held-out document to score")
    prefix = prefix_token_id(tokenizer)
    if prefix is None:
        raise DataError("held-out perplexity needs a BOS or EOS token to condition the first token; the tokenizer "
                        "has neither")
    pieces = [w for t in texts for w in windows([prefix] + tokenizer.encode(t, add_special_tokens=False), window,
                                                  stride)]
    pieces.sort(key=lambda p: (-len(p[0]), tuple(p[0])))
    device = next(model.parameters()).device
    nll, scored = 0.0, 0
    for start in tqdm(range(0, len(pieces), batch_size), desc="ppl", disable=not progress, leave=False):
        chunk = pieces[start:start + batch_size]
        width = max(len(p) for p, _ in chunk) - 1
        batch = torch.zeros(len(chunk), width, dtype=torch.long)          # (B, T), right-padded with 0
        for row, (p, _) in enumerate(chunk):
            batch[row, :len(p) - 1] = torch.tensor(p[:-1])
        logits = model(input_ids=batch.to(device)).logits                 # (B, T, V)
        for row, (p, n) in enumerate(chunk):
            span = logits[row, len(p) - 1 - n:len(p) - 1].float()          # (n, V)
            target = torch.tensor(p[-n:], device=span.device)
            nll += F.cross_entropy(span, target, reduction="sum").item()
            scored += n
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return {"perplexity": math.exp(nll / scored), "bits_per_byte": nll / math.log(2) / n_bytes, "nll": nll,
            "tokens": scored, "bytes": n_bytes, "documents": len(texts)}


def describe_source(data) -> str:
    if data is None:
        return "default"
    return os.fspath(data) if isinstance(data, (str, os.PathLike)) else type(data).__name__

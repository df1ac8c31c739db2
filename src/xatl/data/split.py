"""Deterministic document-level train/validation split.

Each document gets ``u = blake2b(seed, text) / 2**64`` in [0, 1). With ``val_fraction`` a document is held out
when ``u < val_fraction``; with ``val_documents = K`` the K lowest ``u`` are. The split depends on nothing but
the text and the seed: not on order, on the other documents, or on the machine; identical documents always land
on the same side, so a held-out text never leaks into training through a duplicate.
"""

from __future__ import annotations

import hashlib

import numpy as np
from datasets import DatasetDict, IterableDatasetDict

from .config import DataConfig


def split_hash(text: str, seed: int) -> float:
    """The document's position in [0, 1) for the split."""
    h = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(h, "big") / 2.0**64


def validation_mask(us: np.ndarray, sources: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Boolean (N,) mask of held-out documents from their hashes ``us`` (N,) and ``sources`` (N,)."""
    if cfg.val_documents is not None:
        k = min(cfg.val_documents, len(us))
        if k == 0:
            return np.zeros(len(us), dtype=bool)
        threshold = np.partition(us, k - 1)[k - 1]
        return us <= threshold
    mask = us < cfg.val_fraction
    if cfg.val_fraction > 0:
        for s in np.unique(sources):               # every source with >= 2 documents keeps one for validation
            mine = sources == s
            if mine.sum() >= 2 and not mask[mine].any():
                mask |= mine & (us == us[mine].min())
    return mask


def split_documents(docs, cfg: DataConfig):
    """Documents -> ``DatasetDict(train, validation)``, disjoint and deterministic (see the module docstring)."""
    if cfg.streaming:
        def held_out(example):
            return split_hash(example["text"], cfg.seed) < cfg.val_fraction

        return IterableDatasetDict(train=docs.filter(lambda ex: not held_out(ex)), validation=docs.filter(held_out))
    us, sources = [], []
    for batch in docs.select_columns(["text", "source"]).iter(batch_size=10_000):
        us.extend(split_hash(t, cfg.seed) for t in batch["text"])
        sources.extend(batch["source"])
    mask = validation_mask(np.asarray(us, dtype=np.float64), np.asarray(sources, dtype=object), cfg)
    return DatasetDict(train=docs.select(np.flatnonzero(~mask)), validation=docs.select(np.flatnonzero(mask)))

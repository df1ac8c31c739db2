"""Tokenize documents and pack them into fixed-length blocks, cached on disk.

Packing: every document is tokenized without special tokens and followed by one EOS; the documents of a split
are laid end to end in order and cut into blocks of exactly ``block_size`` tokens. Only the final partial block
of each split is dropped, so the concatenation of the blocks is a prefix of the concatenated documents: no token
is lost in between, none is duplicated.

Cache: ``$XATL_HOME/datasets/lm-<key>/{train,validation}.arrow`` + ``meta.json`` (written last, atomically), where
``key`` hashes the documents' content (after the split), the tokenizer, the block size and the pipeline version.
A rerun with the same inputs memory-maps the cached files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value
from datasets.arrow_writer import ArrowWriter

from ..assets import xatl_home
from ..errors import DataError
from ..utils.fs import atomic_directory, atomic_write_json
from .config import DataConfig

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1
"""Bumped whenever tokenization or packing changes, so older caches are not reused."""
SPLITS = ("train", "validation")
HUGE = 10**7
"""A tokenizer ``model_max_length`` at or above this is transformers' "unknown" sentinel."""


def block_features(block_size: int) -> Features:
    return Features({"input_ids": List(Value("int32"), length=block_size)})


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides the token ids we produce (vocabulary, merges, normalizer, EOS)."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        from datasets.fingerprint import Hasher

        h.update(Hasher.hash(tokenizer).encode())
    h.update(f"eos={tokenizer.eos_token_id}".encode())
    return h.hexdigest()


def documents_fingerprint(docs: DatasetDict) -> str:
    """Hash of the split documents' text (order and split membership included)."""
    h = hashlib.sha256()
    for split in SPLITS:
        h.update(f"[{split}]".encode())
        for batch in docs[split].select_columns(["text"]).iter(batch_size=10_000):
            for t in batch["text"]:
                h.update(t.encode("utf-8"))
                h.update(b"\0")
    return h.hexdigest()


def cache_key(data_fp: str, tokenizer_fp: str, block_size: int) -> str:
    payload = json.dumps({"version": PIPELINE_VERSION, "data": data_fp, "tokenizer": tokenizer_fp,
                          "block_size": block_size}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def context_limit(tokenizer, max_length: int | None) -> int | None:
    """The longest block the model can take: ``max_length`` if given, else the tokenizer's (if it knows one)."""
    if max_length is not None:
        return int(max_length)
    n = getattr(tokenizer, "model_max_length", None)
    return int(n) if isinstance(n, int) and 0 < n < HUGE else None


def check_request(cfg: DataConfig, tokenizer, max_length: int | None) -> int:
    """Refuse a block size over the context and a tokenizer without EOS; returns the EOS id."""
    limit = context_limit(tokenizer, max_length)
    if limit is not None and cfg.block_size > limit:
        raise DataError(f"block_size {cfg.block_size} exceeds the model's context of {limit} tokens; "
                        f"choose block_size <= {limit}")
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise DataError("the tokenizer has no EOS token to put between documents; set tokenizer.eos_token")
    return int(eos)


def tokenize(docs: Dataset, tokenizer, eos: int, cfg: DataConfig, cache_file: str | None = None):
    """Documents -> column ``input_ids``: each document's ids followed by EOS (no other special tokens)."""
    def encode(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [x + [eos] for x in ids]}

    features = Features({"input_ids": List(Value("int32"))})
    if isinstance(docs, IterableDataset):
        return docs.map(encode, batched=True, batch_size=cfg.batch_size, remove_columns=["text", "source", "id"])
    return docs.map(encode, batched=True, batch_size=cfg.batch_size, num_proc=cfg.num_proc,
                    remove_columns=docs.column_names, features=features, cache_file_name=cache_file,
                    desc="tokenizing")


def iter_blocks(token_batches, block_size: int):
    """Token id arrays (any lengths) -> (n, block_size) int32 arrays of whole blocks, carrying the remainder.
    Yields ``(blocks, None)`` and finally ``(None, dropped_tail_length)``."""
    carry = np.zeros(0, dtype=np.int32)
    for ids in token_batches:
        buf = np.concatenate([carry, np.asarray(ids, dtype=np.int32)])
        n = len(buf) // block_size
        if n:
            yield buf[:n * block_size].reshape(n, block_size), None
        carry = buf[n * block_size:]
    yield None, len(carry)


def _flat_batches(tokenized: Dataset, batch_rows: int = 2000):
    for table in tokenized.with_format("arrow").iter(batch_size=batch_rows):
        yield pc.list_flatten(table["input_ids"]).to_numpy(zero_copy_only=False)


def write_blocks(tokenized: Dataset, block_size: int, path: Path) -> dict:
    """Pack ``tokenized`` into ``path`` (an Arrow file of ``block_features``); returns counts."""
    stats = {"documents": len(tokenized), "blocks": 0, "tokens": 0, "dropped_tokens": 0}
    with ArrowWriter(features=block_features(block_size), path=str(path)) as writer:
        for blocks, tail in iter_blocks(_flat_batches(tokenized), block_size):
            if blocks is None:
                stats["dropped_tokens"] = tail
                break
            values = pa.array(blocks.reshape(-1), type=pa.int32())
            writer.write_table(pa.table({"input_ids": pa.FixedSizeListArray.from_arrays(values, block_size)}))
            stats["blocks"] += len(blocks)
        writer.finalize()
    stats["tokens"] = stats["blocks"] * block_size
    return stats


def load_cached(path: Path) -> DatasetDict | None:
    """The cached blocks at ``path``, or None when absent or incomplete (no readable meta.json)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("version") != PIPELINE_VERSION:
            return None
        return DatasetDict({s: Dataset.from_file(str(path / f"{s}.arrow")) for s in SPLITS})
    except (OSError, ValueError, pa.ArrowException):
        return None


def build_cached(docs: DatasetDict, tokenizer, eos: int, cfg: DataConfig, path: Path, meta: dict) -> DatasetDict:
    """Tokenize and pack both splits into ``path`` atomically; returns the memory-mapped result."""
    start = time.perf_counter()
    with atomic_directory(path, overwrite=True) as tmp:
        for split in SPLITS:
            tokenized = tokenize(docs[split], tokenizer, eos, cfg, cache_file=str(tmp / f".tokens-{split}.arrow"))
            meta[split] = write_blocks(tokenized, cfg.block_size, tmp / f"{split}.arrow")
            meta[split]["documents"] = len(docs[split])
            del tokenized
            for p in tmp.glob(f".tokens-{split}*"):
                os.unlink(p)
        meta["seconds"] = round(time.perf_counter() - start, 2)
        if meta["train"]["blocks"] == 0:
            raise DataError(f"the training documents hold {meta['train']['dropped_tokens']} tokens, fewer than one "
                            f"block of {cfg.block_size}; add data or lower block_size")
        atomic_write_json(tmp / "meta.json", meta)
    log.info("tokenized %d train / %d validation blocks of %d in %.1f s into %s", meta["train"]["blocks"],
             meta["validation"]["blocks"], cfg.block_size, meta["seconds"], path)
    result = load_cached(path)
    if result is None:
        raise DataError(f"the tokenized cache {str(path)!r} could not be read back; delete it and retry")
    return result


def cache_root(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else xatl_home() / "datasets"


def pack_iterable(docs: IterableDatasetDict, tokenizer, eos: int, cfg: DataConfig) -> IterableDatasetDict:
    """Streaming: tokenize and pack lazily (nothing is written to disk)."""
    def make(split):
        def gen():
            ids = (row["input_ids"] for row in tokenize(docs[split], tokenizer, eos, cfg))
            for blocks, _tail in iter_blocks(ids, cfg.block_size):
                if blocks is not None:
                    for b in blocks:
                        yield {"input_ids": b.tolist()}
        return IterableDataset.from_generator(gen, features=block_features(cfg.block_size))

    return IterableDatasetDict({s: make(s) for s in SPLITS})

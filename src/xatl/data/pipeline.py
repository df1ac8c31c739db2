"""The data pipeline's entry points: documents, held-out documents, and packed token blocks.

    from xatl.data import DataConfig, build_lm_dataset
    blocks = build_lm_dataset(DataConfig(sources=["default"], block_size=512), tokenizer, max_length=8192)
    blocks["train"][0]["input_ids"]          # 512 ints
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from datasets import Dataset, DatasetDict

from ..errors import DataError
from .config import DataConfig
from .pack import (
    PIPELINE_VERSION,
    build_cached,
    cache_key,
    cache_root,
    check_request,
    documents_fingerprint,
    load_cached,
    pack_iterable,
    tokenizer_fingerprint,
)
from .sources import read_sources
from .split import split_documents

log = logging.getLogger(__name__)


def as_config(cfg_or_sources: DataConfig | str | Sequence[str] | None) -> DataConfig:
    """A DataConfig from a config, a source or a list of sources (None: the default mixture)."""
    if isinstance(cfg_or_sources, DataConfig):
        return cfg_or_sources
    if cfg_or_sources is None:
        return DataConfig()
    if isinstance(cfg_or_sources, str):
        return DataConfig(sources=[cfg_or_sources])
    return DataConfig(sources=list(cfg_or_sources))


def load_documents(cfg_or_sources: DataConfig | str | Sequence[str] | None = None) -> DatasetDict:
    """Documents (``text``, ``source``, ``id``) split into ``train`` and ``validation``: whole documents,
    disjoint, the same on every run (see :mod:`xatl.data.split`)."""
    cfg = as_config(cfg_or_sources)
    return split_documents(read_sources(cfg), cfg)


def validation_documents(cfg_or_sources: DataConfig | str | Sequence[str] | None = None) -> Dataset:
    """The held-out documents (``text``, ``source``, ``id``) that never enter training (for perplexity, bits
    per byte)."""
    return load_documents(cfg_or_sources)["validation"]


def build_lm_dataset(cfg: DataConfig, tokenizer, *, max_length: int | None = None) -> DatasetDict:
    """Token blocks for causal-LM training: ``DatasetDict(train, validation)`` with column ``input_ids``, each row
    exactly ``cfg.block_size`` ids; documents packed back to back with EOS after each.

    ``max_length``: the model's context (e.g. ``config.max_position_embeddings``); a larger block size is refused
    (default: the tokenizer's ``model_max_length`` when it knows one). The result is cached under
    ``cfg.cache_dir`` (default ``$XATL_HOME/datasets``) keyed by the documents' content, the tokenizer and the block
    size, so a rerun only memory-maps it. With ``cfg.streaming`` an ``IterableDatasetDict`` is returned instead.
    """
    cfg = as_config(cfg)
    eos = check_request(cfg, tokenizer, max_length)
    docs = load_documents(cfg)
    if cfg.streaming:
        return pack_iterable(docs, tokenizer, eos, cfg)
    if len(docs["train"]) == 0:
        raise DataError("every document was held out for validation; lower val_fraction/val_documents or add data")
    data_fp, tok_fp = documents_fingerprint(docs), tokenizer_fingerprint(tokenizer)
    path = cache_root(cfg) / f"lm-{cache_key(data_fp, tok_fp, cfg.block_size)}"
    cached = load_cached(path)
    if cached is not None:
        log.info("tokenized data: cache hit at %s", path)
        return cached
    meta = {"version": PIPELINE_VERSION, "data_fingerprint": data_fp, "tokenizer_fingerprint": tok_fp,
            "block_size": cfg.block_size, "eos_token_id": eos, "config": cfg.to_dict()}
    return build_cached(docs, tokenizer, eos, cfg, path, meta)


def cache_path(cfg: DataConfig, tokenizer) -> str:
    """Where ``build_lm_dataset(cfg, tokenizer)`` caches its result (for tools and tests)."""
    cfg = as_config(cfg)
    key = cache_key(documents_fingerprint(load_documents(cfg)), tokenizer_fingerprint(tokenizer), cfg.block_size)
    return str(cache_root(cfg) / f"lm-{key}")

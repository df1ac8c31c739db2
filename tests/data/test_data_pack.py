"""Packing is exact (every token once, in order, EOS after each document) and the cache is keyed by every input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_texts, write_jsonl

from xatl.data import DataConfig, build_lm_dataset, cache_path, iter_blocks, load_documents
from xatl.errors import DataError


def expected_stream(docs, tokenizer) -> list[int]:
    """What packing must produce: each document's ids then EOS, end to end."""
    out = []
    for text in docs["text"]:
        out += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return out


@pytest.fixture
def corpus(tmp_path):
    return write_jsonl(tmp_path / "docs.jsonl", make_texts(120))


def test_iter_blocks_keeps_every_token():
    pieces = [np.arange(a, b) for a, b in [(0, 3), (3, 20), (20, 21), (21, 45)]]
    blocks = [b for b, _ in iter_blocks(pieces, 8) if b is not None]
    tail = [t for b, t in iter_blocks(pieces, 8) if b is None][0]
    flat = np.concatenate(blocks).reshape(-1)
    assert flat.tolist() == list(range(40)) and tail == 5
    assert all(b.shape[1] == 8 for b in blocks)


def test_packing_is_exact(home, corpus, tiny_tokenizer, tmp_path):
    cfg = DataConfig(sources=[str(corpus)], block_size=16, val_fraction=0.1, cache_dir=str(tmp_path / "cache"))
    blocks = build_lm_dataset(cfg, tiny_tokenizer)
    docs = load_documents(cfg)
    eos = tiny_tokenizer.eos_token_id
    for split in ("train", "validation"):
        stream = expected_stream(docs[split], tiny_tokenizer)
        rows = list(blocks[split]["input_ids"])
        assert all(len(r) == 16 for r in rows)
        packed = [t for r in rows for t in r]
        assert len(rows) == len(stream) // 16 > 0
        assert packed == stream[:len(packed)]                      # nothing lost, duplicated or reordered
        assert len(stream) - len(packed) < 16                      # only the final partial block is dropped
        # EOS exactly at document ends
        assert packed.count(eos) == stream[:len(packed)].count(eos)
        assert eos not in tiny_tokenizer(docs[split]["text"][0], add_special_tokens=False)["input_ids"]
    assert blocks["train"].features["input_ids"].length == 16


def test_no_validation_split(home, corpus, tiny_tokenizer, tmp_path):
    blocks = build_lm_dataset(DataConfig(sources=[str(corpus)], block_size=16, val_fraction=0.0,
                                         cache_dir=str(tmp_path / "cache")), tiny_tokenizer)
    assert len(blocks["validation"]) == 0 and len(blocks["train"]) > 0


def test_rerun_is_a_cache_hit(home, corpus, tiny_tokenizer, tmp_path, monkeypatch):
    cfg = DataConfig(sources=[str(corpus)], block_size=16, cache_dir=str(tmp_path / "cache"))
    first = build_lm_dataset(cfg, tiny_tokenizer)
    meta = Path(cache_path(cfg, tiny_tokenizer)) / "meta.json"
    assert meta.is_file() and json.loads(meta.read_text())["train"]["blocks"] == len(first["train"])

    import xatl.data.pipeline as pipeline

    def fail(*a, **k):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(pipeline, "build_cached", fail)
    start = time.perf_counter()
    second = build_lm_dataset(cfg, tiny_tokenizer)
    assert time.perf_counter() - start < 5
    assert list(second["train"]["input_ids"]) == list(first["train"]["input_ids"])


def test_cache_key_changes_with_every_input(home, tmp_path, tiny_tokenizer):
    from xatl.data import train_tokenizer

    a = write_jsonl(tmp_path / "a.jsonl", make_texts(60))
    b = write_jsonl(tmp_path / "b.jsonl", make_texts(59) + ["Document 59: a different last document."])
    base = DataConfig(sources=[str(a)], block_size=16, cache_dir=str(tmp_path / "cache"))
    other_tok = train_tokenizer(make_texts(200, seed=2), 280, tmp_path / "tok2")
    keys = {
        "base": cache_path(base, tiny_tokenizer),
        "data": cache_path(DataConfig(sources=[str(b)], block_size=16), tiny_tokenizer),
        "block": cache_path(DataConfig(sources=[str(a)], block_size=32), tiny_tokenizer),
        "seed": cache_path(DataConfig(sources=[str(a)], block_size=16, seed=1), tiny_tokenizer),
        "fraction": cache_path(DataConfig(sources=[str(a)], block_size=16, val_fraction=0.2), tiny_tokenizer),
        "max_docs": cache_path(DataConfig(sources=[str(a)], block_size=16, max_documents=30), tiny_tokenizer),
        "tokenizer": cache_path(base, other_tok),
    }
    names = {k: Path(v).name for k, v in keys.items()}
    assert len(set(names.values())) == len(names), names
    assert cache_path(DataConfig(sources=[str(a)], block_size=16), tiny_tokenizer).endswith(names["base"])


def test_block_size_over_context_is_refused(home, corpus, tiny_tokenizer):
    with pytest.raises(DataError, match=r"block_size 64 exceeds the model's context of 32 tokens"):
        build_lm_dataset(DataConfig(sources=[str(corpus)], block_size=64), tiny_tokenizer, max_length=32)


def test_too_little_text_is_refused(home, tmp_path, tiny_tokenizer):
    small = write_jsonl(tmp_path / "small.jsonl", ["a b c", "d e f"])
    with pytest.raises(DataError, match="fewer than one block"):
        build_lm_dataset(DataConfig(sources=[str(small)], block_size=512, val_fraction=0,
                                    cache_dir=str(tmp_path / "c")), tiny_tokenizer)
    assert not any((tmp_path / "c").glob("lm-*")), "a failed build left a cache entry"


def test_streaming_matches_cached(home, corpus, tiny_tokenizer, tmp_path):
    cfg = DataConfig(sources=[str(corpus)], block_size=16, val_fraction=0.1, cache_dir=str(tmp_path / "cache"))
    cached = build_lm_dataset(cfg, tiny_tokenizer)
    streamed = build_lm_dataset(DataConfig(sources=[str(corpus)], block_size=16, val_fraction=0.1, streaming=True),
                                tiny_tokenizer)
    rows = [r["input_ids"] for r in streamed["train"]]
    assert rows == list(cached["train"]["input_ids"])

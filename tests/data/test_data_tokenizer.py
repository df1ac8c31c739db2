"""Byte-level BPE training: exact round trip, chosen size, HF format, atomic save."""

from __future__ import annotations

import pytest
from data_helpers import make_texts

from xatl.data import train_tokenizer
from xatl.errors import DataError, OutputExistsError


def test_trained_tokenizer_roundtrips_and_loads(tmp_path, tiny_tokenizer):
    from transformers import AutoTokenizer

    assert len(tiny_tokenizer) == 300
    assert tiny_tokenizer.eos_token == tiny_tokenizer.pad_token == tiny_tokenizer.bos_token == "<|endoftext|>"
    text = "Ünïcode & symbols never seen: 日本語 — ok\n\ttabs"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text                     # byte level: nothing is unknown
    common = tiny_tokenizer("the cat sat on a mat", add_special_tokens=False)["input_ids"]
    assert len(common) < 0.7 * len("the cat sat on a mat")        # merges were learnt
    reloaded = AutoTokenizer.from_pretrained(tiny_tokenizer.name_or_path)
    assert reloaded(text, add_special_tokens=False)["input_ids"] == ids
    assert reloaded.eos_token_id == tiny_tokenizer.eos_token_id


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(DataError, match="too small"):
        train_tokenizer(make_texts(5), 100, tmp_path / "t")
    with pytest.raises(DataError, match="no documents"):
        train_tokenizer([], 300, tmp_path / "t")
    assert not (tmp_path / "t").exists()
    train_tokenizer(make_texts(20), 270, tmp_path / "t")
    with pytest.raises(OutputExistsError):
        train_tokenizer(make_texts(20), 270, tmp_path / "t")
    train_tokenizer(make_texts(20), 270, tmp_path / "t", overwrite=True, special_tokens=["<eos>", "<sep>"])

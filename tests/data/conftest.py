"""Fixtures of the data tests: an isolated $XATL_HOME and a tiny trained tokenizer."""

from __future__ import annotations

import pytest
from data_helpers import make_texts


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private $XATL_HOME (tokenized caches and datasets' own cache go there)."""
    monkeypatch.setenv("XATL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A 300-token byte-level BPE trained on the test documents (EOS = <|endoftext|>)."""
    from xatl.data import train_tokenizer

    return train_tokenizer(make_texts(200, seed=1), 300, tmp_path_factory.mktemp("tok") / "tokenizer")

"""Fixtures for the evaluation tests: a character-level tokenizer that fits the tiny models' vocabulary (99), a
tiny benchmark suite in the layout of ``xatl fetch evalsuite``, and a tiny model saved as a directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import char_tokenizer, write_suite

from tiny import tiny_donor


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suite")


@pytest.fixture(scope="session")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_donor("llama", max_position_embeddings=512)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_model, tokenizer) -> Path:
    """The tiny llama and the character tokenizer saved as a model directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

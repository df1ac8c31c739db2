"""Fixtures for the generation tests: tiny students of every mixer (pure and hybrid), a character-level tokenizer
that fits the tiny vocabulary, and a saved student directory."""

from __future__ import annotations

import pytest
from generation_helpers import DONOR, build_student, char_tokenizer

import xatl
from tiny import tiny_donor


@pytest.fixture(scope="session")
def donor():
    return tiny_donor("llama", **DONOR)


@pytest.fixture(scope="session")
def student(donor):
    """student(mixer, attention_layers=()) -> a cached tiny student."""
    built = {}

    def get(mixer: str, attention_layers=()):
        key = (mixer, tuple(attention_layers))
        if key not in built:
            built[key] = build_student(donor, mixer, attention_layers)[0]
        return built[key]

    return get


@pytest.fixture(scope="session")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory, donor, tokenizer):
    """A hybrid retention student (softmax at layer 1) saved with the character tokenizer."""
    student, report = build_student(donor, "retention", (1,))
    path = tmp_path_factory.mktemp("gen") / "student"
    xatl.save_student(student, path, report, tokenizer=tokenizer)
    return path

"""Fixtures of the CLI tests: a tiny Llama donor, and a retention student of it, saved as directories."""

from __future__ import annotations

import pytest

from tiny import tiny_donor


@pytest.fixture(scope="session")
def donor_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("donor") / "llama"
    tiny_donor("llama").save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory):
    """A retention student of the tiny Llama donor, saved with the character-level tokenizer (generate, chat)."""
    import xatl
    from tiny import char_tokenizer

    donor = tiny_donor("llama")
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), seed=0)
    return xatl.save_student(student, tmp_path_factory.mktemp("student") / "retention", report,
                             tokenizer=char_tokenizer())

"""Fixtures of the training tests: a tiny converted student on disk and small random-token datasets."""

from __future__ import annotations

import pytest
from train_helpers import make_data

import xatl
from tiny import tiny_donor


@pytest.fixture(scope="session")
def donor():
    """The tiny Llama donor (GQA, tied embeddings) that every test student is converted from."""
    return tiny_donor("llama")


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory, donor):
    """A retention student of the tiny donor, saved with its transfer report (paper default copy set)."""
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), seed=0)
    return xatl.save_student(student, tmp_path_factory.mktemp("student") / "retention", report)


@pytest.fixture(scope="session")
def data():
    return make_data()

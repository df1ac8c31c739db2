"""Fixtures of the CLI tests: a tiny Llama donor saved as a directory."""

from __future__ import annotations

import pytest

from tiny import tiny_donor


@pytest.fixture(scope="session")
def donor_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("donor") / "llama"
    tiny_donor("llama").save_pretrained(d)
    return d

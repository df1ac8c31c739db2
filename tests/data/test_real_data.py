"""The default mixture (wiki + sotu + pydoc) through the pipeline with the real SmolLM2 tokenizer."""

from __future__ import annotations

import collections

import pytest

from xatl.assets import ASSETS
from xatl.data import DataConfig, build_lm_dataset, load_documents, validation_documents
from xatl.errors import DataError

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smol_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_default_mixture_split():
    docs = load_documents(DataConfig(sources=["default"]))
    total = len(docs["train"]) + len(docs["validation"])
    assert abs(total - sum(ASSETS[n].expected["documents"] for n in ("wiki", "sotu", "pydoc"))) < 30
    held = collections.Counter(docs["validation"]["source"])
    assert set(held) == {"wiki", "sotu", "pydoc"}                    # every corpus is represented
    assert 0.005 < len(docs["validation"]) / total < 0.02
    assert not set(docs["train"]["id"]) & set(docs["validation"]["id"])
    assert list(validation_documents(DataConfig())["id"]) == list(docs["validation"]["id"])


def test_default_mixture_blocks(tmp_path, smol_tokenizer):
    cfg = DataConfig(sources=["default"], block_size=256, max_documents=40, cache_dir=str(tmp_path))
    blocks = build_lm_dataset(cfg, smol_tokenizer, max_length=8192)
    rows = list(blocks["train"]["input_ids"])
    assert len(rows) > 100 and all(len(r) == 256 for r in rows)
    eos = smol_tokenizer.eos_token_id
    assert sum(r.count(eos) for r in rows) >= 100                   # documents are separated by EOS
    again = build_lm_dataset(cfg, smol_tokenizer, max_length=8192)
    assert again["train"].cache_files == blocks["train"].cache_files


def test_block_size_over_donor_context(smol_tokenizer, smollm2_dir):
    import json

    context = json.loads((smollm2_dir / "config.json").read_text())["max_position_embeddings"]
    with pytest.raises(DataError, match=f"exceeds the model's context of {context} tokens"):
        build_lm_dataset(DataConfig(sources=["wiki"], block_size=context + 1), smol_tokenizer, max_length=context)

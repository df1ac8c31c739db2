"""Identity and conversion on the real SmolLM2-135M donor (GQA, tied embeddings, 30 layers)."""

from __future__ import annotations

import pytest
import torch

import xatl

pytestmark = pytest.mark.real

PROMPT = "The capital of France is Paris. The Eiffel Tower stands on the Champ de Mars, near the Seine."


def test_smollm2_identity(smollm2):
    donor, tok = smollm2
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="softmax"), copy="all")
    assert report.initialized_parameters() == []
    batch = tok([PROMPT, "Hello"], return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        ref = donor(**batch).logits
        out = student(**batch).logits
    keep = batch["attention_mask"].bool()
    assert (ref - out)[keep].abs().max().item() <= 1e-5
    # the student shares the donor's tensors' values, not its storage
    assert student.model.embed_tokens.weight.data_ptr() != donor.model.embed_tokens.weight.data_ptr()


def test_smollm2_retention_hybrid_convert(smollm2_dir, tmp_path):
    result = xatl.convert(smollm2_dir, tmp_path / "s", mixer="retention", attention_layers=[1, 11])
    s = result.report.summary()
    assert s["donor_status"].get("unused") == 3 * 28        # q, k, v of the 28 retention layers
    assert 0.5 < s["copied_fraction"] < 1.0
    assert (tmp_path / "s" / "tokenizer.json").exists() and (tmp_path / "s" / "generation_config.json").exists()

"""Healing the real SmolLM2-135M-Instruct (Q4_1, dequantised) donor for a few steps: the validation loss falls."""

from __future__ import annotations

import json

import pytest
from heal_helpers import val_losses

from xatl.heal import HealConfig, heal

pytestmark = [pytest.mark.real, pytest.mark.slow]


def _heal_four_steps(model, donor_dir, tmp_path):
    """Heal a lolcats student (16-token window) of the donor for four steps of 2 x 64 wiki tokens, evaluating every
    two; -> (the heal result, {step: validation loss}). Without LoLA's cache: its 64 + 64 exact pairs would hold
    every 64-token block, so the validations would score full attention from step 0."""
    cfg = HealConfig(donor=str(donor_dir), out_dir=str(tmp_path / "heal"), mixer="lolcats",
                     mixer_options={"window": 16, "sparse_cache": 0}, budget="4steps", block_size=64, micro_batch_size=2,
                     data=["wiki"], max_documents=300, eval_every=2, eval_batches=2, eval_documents=4,
                     eval_window=128)
    result = heal(cfg, donor=model, progress=False)
    return result, val_losses(tmp_path / "heal")


def test_a_few_heal_steps_lower_the_loss_of_a_smollm2_student(smollm2, smollm2_dir, tmp_path):
    model, _ = smollm2
    result, val = _heal_four_steps(model, smollm2_dir, tmp_path)
    assert sorted(val) == [0, 2, 4]                         # step 0, the end of stage 1, the end
    assert val[2] < val[0] and val[4] < val[0] - 0.1, val
    saved = json.loads((tmp_path / "heal" / "heal.json").read_text())
    assert saved["status"] == "done" and saved["donor"]["model_type"] == "llama"
    held = result.results["heldout"]
    assert 1 <= held["documents"] <= 4 and held["ratio"] > 0.9 and held["student"]["tokens"] > 100


def test_a_few_heal_steps_lower_the_loss_of_a_gemma3_student(gemma3, gemma3_dir, tmp_path):
    """The same on the real Gemma 3 270M (pretrained, Q4_K_M dequantised): a lolcats student (a 16-token window;
    the q/k norms copied into every layer) heals for four steps of 2 x 64 tokens."""
    model, _ = gemma3
    result, val = _heal_four_steps(model, gemma3_dir, tmp_path)
    assert sorted(val) == [0, 2, 4]
    assert val[4] < val[0], val
    saved = json.loads((tmp_path / "heal" / "heal.json").read_text())
    assert saved["status"] == "done" and saved["donor"]["model_type"] == "gemma3_text"
    report = json.loads((tmp_path / "heal" / "student" / "transfer_report.json").read_text())
    assert report["student_tensors"]["model.layers.0.mixer.q_norm.weight"]["status"] == "copied"
    held = result.results["heldout"]
    assert 1 <= held["documents"] <= 4 and held["student"]["tokens"] > 100

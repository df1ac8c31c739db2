"""Identity and conversion on the real Gemma 3 270M donor (pretrained, Q4_K_M dequantised): 18 layers, 4 heads and
1 KV head of dim 256, sandwich norms with 1 + w, scaled embeddings, q/k norms, 5 sliding-window (512) layers with
RoPE base 10^4 per full layer with base 10^6, tied 262k-token embeddings."""

from __future__ import annotations

import json

import pytest
import torch

import xatl

pytestmark = pytest.mark.real

PROMPT = "The capital of France is Paris. The Eiffel Tower stands on the Champ de Mars, near the Seine."


def _long_text(tokenizer, n_tokens: int) -> torch.Tensor:
    """(1, n_tokens) ids of held-out Wikipedia prose: longer than the 512-token window of the local layers."""
    from xatl.data import DataConfig, validation_documents

    text = "\n\n".join(validation_documents(DataConfig(sources=["wiki"]))["text"][:40])
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :n_tokens]
    assert ids.shape[1] == n_tokens
    return ids


@pytest.mark.slow
def test_gemma3_identity(gemma3):
    donor, tok = gemma3
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="softmax"), copy="all")
    assert report.initialized_parameters() == []
    assert student.config.sliding_window_layers == [i for i in range(18) if i % 6 != 5]
    batch = tok([PROMPT, "Hello"], return_tensors="pt", padding=True, padding_side="left")
    long_ids = _long_text(tok, 600)
    with torch.no_grad():
        ref, out = donor(**batch).logits, student(**batch).logits
        ref_long, out_long = donor(long_ids).logits, student(long_ids).logits
        ids = tok("The capital of Germany is Berlin. The capital of France is", return_tensors="pt")
        greedy = dict(max_new_tokens=8, do_sample=False)
        tokens, ref_tokens = student.generate(**ids, **greedy), donor.generate(**ids, **greedy)
    keep = batch["attention_mask"].bool()
    assert (ref - out)[keep].abs().max().item() <= 1e-5
    assert (ref_long - out_long).abs().max().item() <= 1e-5          # past the window: local and global RoPE
    assert torch.equal(tokens, ref_tokens) and "Paris" in tok.decode(tokens[0, ids["input_ids"].shape[1]:])


def test_gemma3_retention_hybrid_convert(gemma3_dir, tmp_path):
    """Retention everywhere but the three global layers; the default copy set leaves the retention layers' q, k, v
    and q/k norms fresh."""
    result = xatl.convert(gemma3_dir, tmp_path / "s", mixer="retention", attention_layers=[5, 11, 17])
    s = result.report.summary()
    assert s["donor_status"].get("unused") == 5 * 15            # q, k, v, q_norm, k_norm of the 15 retention layers
    assert 0.5 < s["copied_fraction"] < 1.0
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (cfg["norm_layout"], cfg["norm_offset"], cfg["qk_norm"]) == ("sandwich", 1.0, "head")
    assert cfg["embed_scale"] == pytest.approx(640**0.5) and cfg["sliding_rope_parameters"]["rope_theta"] == 1e4
    assert (tmp_path / "s" / "tokenizer.json").exists() and (tmp_path / "s" / "generation_config.json").exists()

"""The donor's q/k norms (Qwen3 and Gemma 3 per head, OLMo 2 over the whole projection) go where each mixer uses
them, or are reported unused with the reason; students of the new families save and reload exactly, and students
saved before the new skeleton fields existed load unchanged."""

from __future__ import annotations

import json

import pytest
import torch

import xatl
from tiny import VOCAB, tiny_donor
from xatl.mixers.projections import project_heads

QK_FAMILIES = ("qwen3", "olmo2", "gemma3")


def _ids(T=9, seed=0):
    return torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", QK_FAMILIES)
@pytest.mark.parametrize("mixer", sorted(xatl.MIXERS))
def test_qk_norms_go_where_the_mixer_uses_them(family, mixer):
    d = tiny_donor(family)
    student, report = xatl.transfer(d, xatl.student_config(d.config, mixer=mixer), copy="all")
    for layer in range(d.config.num_hidden_layers):
        module = student.model.layers[layer].mixer
        for part in ("q_norm", "k_norm"):
            rec = report.donor_tensors[f"model.layers.{layer}.self_attn.{part}.weight"]
            if not hasattr(module, part):
                assert rec["status"] == "unused" and mixer in rec["reason"], rec
                continue
            target = f"model.layers.{layer}.mixer.{part}.weight"
            assert rec["status"] == "copied" and rec["to"] == [target], rec
            assert report.student_tensors[target]["note"].startswith(f"applied to {part[0]}")
    # a norm the report calls copied is used: moving its weights moves the output
    if hasattr(student.model.layers[0].mixer, "q_norm"):
        ids = _ids()
        with torch.no_grad():
            before = student(ids).logits
            for layer in student.model.layers:
                layer.mixer.q_norm.weight.mul_(3.0)
                layer.mixer.k_norm.weight.mul_(0.5)
            assert not torch.allclose(before, student(ids).logits)


@pytest.mark.parametrize("mixer", ["linear", "retention", "gla"])
def test_full_k_norm_over_repeated_kv_heads_is_the_donors(mixer):
    """OLMo 2 normalises the whole (H_kv * D) key projection; a mixer with full heads gets the K rows and the norm
    weight repeated per head, and the RMS of the repeated vector is the RMS of the original: the same keys."""
    d = tiny_donor("olmo2")                                # 4 heads, 2 KV heads, head_dim 8
    student, report = xatl.transfer(d, xatl.student_config(d.config, mixer=mixer), copy="all")
    rec = report.student_tensors["model.layers.0.mixer.k_norm.weight"]
    assert rec["status"] == "copied" and "repeat_kv(2)" in rec["transform"]
    x = torch.randn(2, 5, d.config.hidden_size, generator=torch.Generator().manual_seed(0))
    attn = d.model.layers[0].self_attn
    with torch.no_grad():
        ref = attn.k_norm(attn.k_proj(x)).view(2, 5, 2, 8).transpose(1, 2).repeat_interleave(2, 1)   # (B, H, T, D)
        got = project_heads(student.model.layers[0].mixer, "k", x)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)


def test_default_copy_leaves_qk_norms_with_the_fresh_projections():
    """q/k norms belong to the qkv component: the paper's default copy set (no Q/K/V) leaves them fresh in LCI
    layers (scale 1; Gemma's zeros under 1 + w), while a hybrid's softmax layer takes the donor's."""
    d = tiny_donor("gemma3")
    student, report = xatl.transfer(d, xatl.student_config(d.config, mixer="retention", attention_layers=[1]))
    fresh = report.student_tensors["model.layers.0.mixer.q_norm.weight"]
    assert fresh["status"] == "initialized" and fresh["init"].startswith("zeros")
    assert torch.equal(student.model.layers[0].mixer.q_norm.weight, torch.zeros(16))
    assert report.student_tensors["model.layers.1.mixer.q_norm.weight"]["status"] == "copied"
    assert "qkv" in report.donor_tensors["model.layers.0.self_attn.q_norm.weight"]["reason"]


@pytest.mark.parametrize("family", ["qwen3", "phi3", "olmo2", "gemma3", "gemma3_mm"])
def test_new_family_students_save_and_reload_exactly(family, tmp_path):
    from transformers import AutoModelForCausalLM

    d = tiny_donor(family)
    student, report = xatl.transfer(d, xatl.student_config(d.config, mixer="retention", attention_layers=[1]),
                                    copy="all")
    xatl.save_student(student, tmp_path, report)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = _ids(13)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, student(ids).logits)
    for field in ("norm_layout", "norm_offset", "qk_norm", "embed_scale", "sliding_rope_parameters",
                  "final_logit_softcapping"):
        assert getattr(loaded.config, field) == getattr(student.config, field), field


def test_students_saved_before_the_new_fields_load_unchanged(tmp_path):
    """A config.json written before norm_layout, qk_norm, embed_scale ... existed loads with their defaults, which
    are the old behaviour: the same logits."""
    from transformers import AutoModelForCausalLM

    d = tiny_donor("llama")
    student, report = xatl.transfer(d, xatl.student_config(d.config, mixer="gla", attention_layers=[1]), seed=0)
    xatl.save_student(student, tmp_path, report)
    path = tmp_path / "config.json"
    cfg = json.loads(path.read_text())
    new = ("norm_offset", "norm_weight_fp32", "norm_layout", "qk_norm", "sliding_rope_parameters", "embed_scale",
           "final_logit_softcapping")
    path.write_text(json.dumps({k: v for k, v in cfg.items() if k not in new}))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = _ids(13)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, student(ids).logits)
    assert loaded.config.norm_layout == "pre" and loaded.config.qk_norm is None and loaded.config.embed_scale is None

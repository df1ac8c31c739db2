"""Transfer into every mixer: with copy="all" the donor's Q/K/V/O land bit-exactly where each mixer has a place for
them (GQA heads repeated), the report says why where not; registry and hybrid layouts are validated."""

from __future__ import annotations

import pytest
import torch
from mixer_helpers import CASES, LCI_MIXERS, config, donor

import xatl
from tiny import VOCAB
from xatl.errors import ConfigError

# where each mixer puts the donor's q/k/v/o (None: no place, the report says why)
PLACES = {
    "linear": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
    "retention": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
    "gla": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
    "swa": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
    "lolcats": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
    "mamba2": {"q": "C_proj", "k": "B_proj", "v": "x_proj", "o": "out_proj"},
    "mamba": {"q": None, "k": None, "v": "x_proj", "o": "out_proj"},
    "deltanet": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
    "gated_deltanet": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
}


def _donor_weight(d, family, layer, part):
    """The donor's (out, in) weight of projection ``part`` at ``layer``."""
    if family == "llama":
        return d.state_dict()[f"model.layers.{layer}.self_attn.{part}_proj.weight"]
    attn = d.gpt_neox.layers[layer].attention                      # fused qkv, per head [q; k; v] rows
    if part == "o":
        return attn.dense.weight
    H, D = d.config.num_attention_heads, d.config.hidden_size // d.config.num_attention_heads
    w = attn.query_key_value.weight.view(H, 3, D, -1)
    return w[:, "qkv".index(part)].reshape(H * D, -1)


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_copy_all_places_donor_attention(case, family):
    d = donor(family)
    student, report = xatl.transfer(d, config(case, family), copy="all")
    name = CASES[case][0]
    H, Hkv = d.config.num_attention_heads, getattr(d.config, "num_key_value_heads", d.config.num_attention_heads)
    D = d.config.hidden_size // H
    for layer in range(d.config.num_hidden_layers):
        mixer = student.model.layers[layer].mixer
        for part, module in PLACES[name].items():
            src = _donor_weight(d, family, layer, part)
            if module is None:
                donor_name = next(n for n, r in report.donor_tensors.items()
                                  if r["layer"] == layer and f"{part}.weight" in r["roles"])
                assert "no place" in report.donor_tensors[donor_name]["reason"]
                continue
            got = getattr(mixer, module).weight
            if part in "kv" and got.shape[0] != src.shape[0]:          # GQA: each K/V head repeated H/H_kv times
                src = src.view(Hkv, D, -1).repeat_interleave(H // Hkv, 0).reshape(got.shape)
            assert torch.equal(got, src), f"layer {layer} {module} is not the donor's {part}"
            rec = report.student_tensors[f"model.layers.{layer}.mixer.{module}.weight"]
            assert rec["status"] == "copied"
    report.check_complete(dict(d.named_parameters(remove_duplicate=False)), student.state_dict())


def test_transfer_notes_and_learned_maps_in_report():
    d = donor()
    _, report = xatl.transfer(d, config("mamba2"), copy="all")
    assert report.student_tensors["model.layers.0.mixer.C_proj.weight"]["note"] == "C <- Q"
    assert report.student_tensors["model.layers.0.mixer.A_log"]["status"] == "initialized"
    _, report = xatl.transfer(d, config("linear-hedgehog"), copy="all")
    rec = report.student_tensors["model.layers.0.mixer.q_map.weight"]
    assert rec["status"] == "initialized" and "identity" in rec["init"]


def test_swa_with_a_window_longer_than_the_text_is_the_donor():
    """Sliding-window attention with the donor's own q/k/v/o and RoPE is exactly the donor's attention while the
    window covers the text (left padding included)."""
    for family in ("llama", "gpt2"):
        d = donor(family)
        cfg = xatl.student_config(d.config, mixer="swa", mixer_options={"window": 32, "chunk_size": 8})
        student, _ = xatl.transfer(d, cfg, copy="all")
        ids = torch.randint(0, VOCAB, (2, 21), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[1, :4] = 0
        with torch.no_grad():
            ref, out = d(ids, attention_mask=mask).logits, student(ids, attention_mask=mask).logits
        assert (ref - out)[mask.bool()].abs().max().item() <= 1e-5, family


def test_lolcats_with_a_window_longer_than_the_text_is_the_donor():
    """The LoLCATs mixer's softmax part is the donor's attention: while the window covers the text, nothing goes
    through the linear part and the student reproduces the donor's logits (left padding included)."""
    d = donor("llama")
    cfg = xatl.student_config(d.config, mixer="lolcats", mixer_options={"window": 32, "chunk_size": 8})
    student, report = xatl.transfer(d, cfg, copy="all")
    assert report.student_tensors["model.layers.0.mixer.q_map.weight"]["status"] == "initialized"
    ids = torch.randint(0, VOCAB, (2, 21), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    with torch.no_grad():
        ref, out = d(ids, attention_mask=mask).logits, student(ids, attention_mask=mask).logits
    assert (ref - out)[mask.bool()].abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", LCI_MIXERS)
def test_hybrid_layouts_validate_and_decode(name):
    d = donor()
    cfg = xatl.student_config(d.config, mixer=name, attention_layers=[1], mixer_options={"chunk_size": 8})
    assert cfg.layer_mixers == [name, "softmax", name]
    student, report = xatl.transfer(d, cfg, copy="all")
    assert all(report.student_tensors[n]["status"] == "copied" for n in report.student_tensors if ".1.mixer." in n)
    ids = torch.randint(0, VOCAB, (2, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = student(ids).logits
        out = student(ids[:, :12], use_cache=True)
        steps, cache = [out.logits], out.cache
        for t in range(12, 19):
            out = student(ids[:, t:t + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
            cache = out.cache
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-4
    with pytest.raises(ConfigError, match="out of range"):
        xatl.student_config(d.config, mixer=name, attention_layers=[7])


def test_registry_lists_every_mixer_and_refuses_bad_options():
    assert set(xatl.MIXERS) == {"softmax", *LCI_MIXERS}
    d = donor()
    with pytest.raises(ConfigError, match="unknown mixer 'mamba3'; choose one of"):
        xatl.student_config(d.config, mixer="mamba3")
    with pytest.raises(ConfigError, match="unknown option 'windw'"):
        xatl.student_config(d.config, mixer="swa", mixer_options={"windw": 4})
    for mixer, opts in (("linear", {"feature_map": "cosine"}), ("swa", {"window": 0}), ("mamba", {"conv_init": "x"}),
                        ("gla", {"kernels": "cuda"}), ("mamba2", {"d_state": 0}),
                        ("lolcats", {"sparse_cache": 4, "cache_position_limit": 100})):   # linear_rope: no raw keys
        with pytest.raises(ConfigError, match="bad option"):
            xatl.student_config(d.config, mixer=mixer, mixer_options=opts)


@pytest.mark.parametrize("case", sorted(CASES))
def test_saved_student_reloads_with_the_same_logits(case, tmp_path):
    """Everything a mixer owns (direct parameters, learned feature maps, recomputed buffers) survives
    save_pretrained / from_pretrained."""
    from transformers import AutoModelForCausalLM

    student, _ = xatl.transfer(donor(), config(case), copy="all", seed=0)
    with torch.no_grad():
        for p in student.parameters():                       # move every tensor off its initial value
            p.add_(torch.randn_like(p) * 0.01)
    student.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, VOCAB, (1, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, student(ids).logits)


@pytest.mark.parametrize("mixer,options,refused", [
    ("mamba2", {"d_state": 4}, ("q", "k")), ("mamba2", {"expand": 2}, ("v", "o")), ("mamba", {"expand": 2}, "qkvo")])
def test_geometry_that_cannot_take_the_donor_is_reported(mixer, options, refused):
    d = donor()
    student, report = xatl.transfer(d, xatl.student_config(d.config, mixer=mixer, mixer_options=options), copy="all")
    for part in "qkvo":
        rec = report.donor_tensors[f"model.layers.0.self_attn.{part}_proj.weight"]
        if part in refused:
            assert rec["status"] == "unused" and mixer in rec["reason"], rec
        else:
            assert rec["status"] == "copied", rec

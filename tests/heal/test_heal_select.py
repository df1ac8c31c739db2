"""Choosing a hybrid's softmax layers by the long-context criterion (``xatl.heal.select``): on a constructed donor
whose only layer with an attention output is one "retrieval" layer, that layer is the one chosen; switching a layer
back to softmax is exact and undone afterwards."""

from __future__ import annotations

import pytest
import torch

import xatl
from tiny import char_tokenizer, tiny_donor
from xatl.heal.select import probe_prompts, select_attention_layers, switched_to_softmax

LENGTH = 320          # characters = tokens: the passkey prompt's fixed parts take about 230


def _donor(retrieval: int):
    """A tiny 4-layer llama whose attention writes to the residual stream only in layer ``retrieval`` (every other
    layer's o_proj is zero), and there with sharp scores (queries x 30: each query picks a few matching keys
    anywhere in the context) and a strong output: only that layer's token mixing matters, and it looks far back."""
    donor = tiny_donor("llama", seed=3, num_hidden_layers=4, max_position_embeddings=1024)
    with torch.no_grad():
        for i, layer in enumerate(donor.model.layers):
            if i != retrieval:
                layer.self_attn.o_proj.weight.zero_()
            else:
                layer.self_attn.q_proj.weight.mul_(30.0)
                layer.self_attn.o_proj.weight.mul_(8.0)
    return donor


def _student(donor):
    cfg = xatl.student_config(donor.config, mixer="lolcats", mixer_options={"window": 4, "feature_dim": 4})
    student, _ = xatl.transfer(donor, cfg, "all", seed=0)
    return student


@pytest.mark.parametrize("retrieval", [0, 2])
def test_the_retrieval_layer_is_chosen(retrieval):
    donor = _donor(retrieval)
    student = _student(donor)
    sel = select_attention_layers(student, donor, char_tokenizer(), k=1, length=LENGTH, count=2)
    assert sel.layers == [retrieval]
    assert sel.kl[retrieval] < 1e-8 and sel.base_kl > 1e-5          # switched back: the student is the donor
    assert all(sel.kl[i] == pytest.approx(sel.base_kl, rel=1e-4) for i in sel.kl if i != retrieval)
    assert sel.probes["scored_tokens"] == sum(len(p) for _, p in probe_prompts(char_tokenizer(), LENGTH, 2, 1))


def test_switching_to_softmax_is_exact_and_undone():
    donor = tiny_donor("llama", seed=4, num_hidden_layers=2, max_position_embeddings=1024)
    student = _student(donor)
    ids = torch.randint(3, 90, (1, 40))
    with torch.no_grad():
        before = student(input_ids=ids).logits
        with switched_to_softmax(student, 0), switched_to_softmax(student, 1):
            assert torch.allclose(student(input_ids=ids).logits, donor(input_ids=ids).logits, atol=1e-4)
        assert torch.equal(student(input_ids=ids).logits, before)
    assert type(student.model.layers[0].mixer).__name__ == "LolcatsAttention"


def test_too_many_layers_is_refused():
    donor = tiny_donor("llama", seed=4, num_hidden_layers=2, max_position_embeddings=1024)
    with pytest.raises(ValueError, match="cannot keep 3 softmax layers"):
        select_attention_layers(_student(donor), donor, char_tokenizer(), k=3, length=LENGTH, count=1)

"""The identity test: an all-softmax student with full transfer reproduces its donor's logits exactly."""

from __future__ import annotations

import pytest
import torch

import xatl
from tiny import FAMILIES, VOCAB, tiny_donor


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, 17), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0          # left padding
    mask[2, :1] = 0
    return ids, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_all_softmax_student_reproduces_donor(family):
    donor = tiny_donor(family)
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="softmax"), copy="all")
    ids, mask = _inputs()
    with torch.no_grad():
        ref, out = donor(ids).logits, student(ids).logits
        ref_m, out_m = donor(ids, attention_mask=mask).logits, student(ids, attention_mask=mask).logits
    assert (ref - out).abs().max().item() <= 1e-5
    keep = mask.bool()
    assert (ref_m - out_m)[keep].abs().max().item() <= 1e-5
    # nothing unaccounted for, and nothing left fresh in an all-softmax student
    report.check_complete(dict(donor.named_parameters(remove_duplicate=False)), student.state_dict())
    assert report.initialized_parameters() == []


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_hybrid_keeps_donor_attention_layers(family):
    """A hybrid's softmax layers are exact copies of the donor's: a hybrid whose LCI layers are also
    softmax is just the identity, and its attention layer gets every donor attention weight."""
    donor = tiny_donor(family)
    cfg = xatl.student_config(donor.config, mixer="retention", attention_layers=[1])
    student, report = xatl.transfer(donor, cfg)          # paper default copy set (no qkv)
    assert cfg.layer_mixers == ["retention", "softmax", "retention"]
    attn = {n for n, r in report.student_tensors.items() if ".1.mixer." in n}
    assert attn and all(report.student_tensors[n]["status"] == "copied" for n in attn)
    lci = [n for n, r in report.student_tensors.items() if ".0.mixer.q_proj" in n]
    assert lci and all(report.student_tensors[n]["status"] == "initialized" for n in lci)


@pytest.mark.parametrize("family", FAMILIES)
def test_all_softmax_student_decodes_as_the_donor(family):
    """The same with the KV cache: a left-padded batch decoded greedily by the student's generate() (prompt once,
    then one cached step per token, past every sliding window) gives the donor's tokens, and the cached prefill's
    logits are the donor's."""
    donor = tiny_donor(family)
    student, _ = xatl.transfer(donor, xatl.student_config(donor.config, mixer="softmax"), copy="all")
    ids = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    kw = dict(attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        assert torch.equal(student.generate(ids, **kw), donor.generate(ids, **kw))
        out = student(ids, attention_mask=mask, use_cache=True)
        ref = donor(ids, attention_mask=mask).logits
    assert out.cache.get_seq_length() == 7
    assert (ref - out.logits)[mask.bool()].abs().max().item() <= 1e-5


def test_every_donor_family_has_a_tiny_identity_family():
    """Guard: an adapter added to the registry without a tiny family in tests/tiny.py would have no identity test."""
    from tiny import tiny_config
    from xatl.donors.registry import ADAPTERS

    covered = {tiny_config(family).model_type for family in FAMILIES}
    missing = sorted(set(ADAPTERS) - covered)
    assert not missing, f"donor model types without a tiny family in tests/tiny.py (FAMILIES): {missing}"

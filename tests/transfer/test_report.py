"""Transfer reports are complete, copies are bit-exact, and the copy selection is honoured."""

from __future__ import annotations

import pytest
import torch

import xatl
from tiny import FAMILIES, tiny_donor
from xatl.errors import ConfigError
from xatl.transfer.core import parse_copy
from xatl.transfer.report import TransferReport


def _donor_tensors(donor):
    return dict(donor.state_dict(keep_vars=False))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mixer", ["retention", "linear"])
def test_report_complete_and_copies_bit_exact(family, mixer, tmp_path):
    donor = tiny_donor(family)
    before = {k: v.clone() for k, v in _donor_tensors(donor).items()}
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer=mixer))
    sd = student.state_dict()
    report.check_complete(dict(donor.named_parameters(remove_duplicate=False)), sd)
    n_copied = 0
    for name, rec in report.student_tensors.items():
        assert rec["status"] in {"copied", "initialized", "tied"}, rec
        if rec["status"] == "copied" and rec["transform"] in ("identity", "transpose"):
            src = before[rec["from"]]
            src = src.t() if rec["transform"] == "transpose" else src
            assert torch.equal(sd[name], src), name
            n_copied += 1
        if rec["status"] == "initialized":
            assert rec.get("init"), f"{name}: a fresh tensor must say how it was initialised"
    assert n_copied > 0
    for name, rec in report.donor_tensors.items():
        assert rec["status"] in {"copied", "unused", "tied"}, rec
        if rec["status"] == "unused":
            assert rec.get("reason"), f"{name}: an unused donor tensor must say why"
    # default copy set leaves Q/K/V fresh and copies o_proj
    comps = {r.get("component") for r in report.student_tensors.values() if r["status"] == "copied"}
    assert {"embed", "norms", "mlp", "o_proj"} <= comps and "qkv" not in comps
    # JSON round trip
    report.save(tmp_path / "r.json")
    again = TransferReport.load(tmp_path / "r.json")
    assert again.student_tensors == report.student_tensors and again.donor_tensors == report.donor_tensors


def test_qkv_copy_repeats_kv_heads_for_gqa():
    donor = tiny_donor("llama")                           # 4 heads, 2 KV heads, head_dim 8
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="linear"), copy="all")
    dk = donor.model.layers[0].self_attn.k_proj.weight    # (2*8, 32)
    sk = student.model.layers[0].mixer.k_proj.weight      # (4*8, 32)
    expect = dk.view(2, 1, 8, 32).expand(2, 2, 8, 32).reshape(32, 32)
    assert torch.equal(sk, expect)
    assert torch.equal(student.model.layers[0].mixer.q_proj.weight, donor.model.layers[0].self_attn.q_proj.weight)
    assert report.initialized_parameters() == [] or all("mixer" in n for n in report.initialized_parameters())


def test_from_scratch_copies_nothing():
    donor = tiny_donor("llama")
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), copy="none")
    assert report.copied_parameters() == []
    assert not torch.equal(student.model.embed_tokens.weight, donor.model.embed_tokens.weight)


def test_parse_copy():
    assert parse_copy("default") == ("embed", "norms", "mlp", "lm_head", "o_proj")
    assert parse_copy("all")[-1] == "qkv"
    assert parse_copy("mlp,embed") == ("embed", "mlp")
    with pytest.raises(ConfigError, match="unknown copy component 'attn'"):
        parse_copy("attn")


def test_tied_embeddings_must_travel_together():
    donor = tiny_donor("llama")                           # tied embeddings
    with pytest.raises(ConfigError):
        xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), copy="embed,norms,mlp")


def test_summary_prints_readably_and_stays_a_dict():
    import json

    donor = tiny_donor("llama")
    _, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"))
    summary = report.summary()
    text = str(summary)
    assert text.startswith("student parameters: ") and "copied mlp" in text and "donor tensors: " in text
    assert "{" not in text.splitlines()[0]
    assert json.loads(json.dumps(summary))["copied_parameters"] == summary["copied_parameters"]

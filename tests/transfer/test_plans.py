"""Transfer plans at real sizes (8B-70B donors) on the meta device: every donor tensor is accounted for, every
student tensor has the right shape for its mixer, and the planned memory is stated."""

from __future__ import annotations

import math

import pytest
import torch
from big_configs import BIG_CONFIGS, PARAMETERS, big_config

from xatl.donors.registry import ADAPTERS
from xatl.mixers.registry import MIXERS, keeps_donor_attention
from xatl.transfer.plan import plan_transfer

NAMES = [n for n in BIG_CONFIGS if BIG_CONFIGS[n]["model_type"] in ADAPTERS]


def _donor_shapes(config) -> dict[str, tuple]:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        donor = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    assert sum(p.numel() for p in donor.parameters()) == PARAMETERS[config_name(config)]
    return {n: tuple(t.shape) for n, t in donor.state_dict().items()}


def config_name(config) -> str:
    return config._xatl_name


@pytest.fixture(scope="module", params=NAMES)
def donor(request):
    config = big_config(request.param)
    config._xatl_name = request.param
    return config, _donor_shapes(config)


def test_every_family_of_the_big_configs_is_supported():
    missing = sorted({c["model_type"] for c in BIG_CONFIGS.values()} - set(ADAPTERS))
    assert not missing, f"no adapter for {missing}"


def test_softmax_plan_copies_every_donor_tensor(donor):
    config, shapes = donor
    plan = plan_transfer(config, mixer="softmax", copy="all")
    report = plan.report
    assert set(report.donor_tensors) == set(shapes)
    for name, rec in report.donor_tensors.items():
        assert tuple(rec["shape"]) == shapes[name]
        assert rec["status"] in ("copied", "tied"), (name, rec)
    fresh = report.initialized_parameters()
    assert not fresh, fresh[:5]
    for name, rec in report.student_tensors.items():      # a copied tensor has its donor piece's shape
        if rec["status"] == "copied" and "repeat_kv" not in rec.get("transform", ""):
            pieces = len(report.donor_tensors[rec["from"]]["roles"])     # a fused qkv holds three
            assert math.prod(rec["shape"]) * pieces == math.prod(shapes[rec["from"]]), name
    assert plan.student_bytes == plan.donor_bytes == PARAMETERS[config_name(config)] * 2


@pytest.mark.parametrize("mixer", [m for m in MIXERS if not keeps_donor_attention(m)])
def test_lci_plans_account_for_every_tensor(donor, mixer):
    config, shapes = donor
    plan = plan_transfer(config, mixer=mixer, copy="all")
    report = plan.report
    assert set(report.donor_tensors) == set(shapes)
    for name, rec in report.donor_tensors.items():
        if rec["status"] != "copied":
            assert rec["status"] in ("tied", "unused", "partly copied") and rec.get("reason"), (name, rec)
    C, V = config.hidden_size, config.vocab_size
    for name, rec in report.student_tensors.items():
        shape = tuple(rec["shape"])
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert shape == (V, C)
        elif ".mixer." not in name:              # norms and MLPs: the donor's own, copied
            assert rec["status"] == "copied", (name, rec)
            assert math.prod(shape) == math.prod(shapes[rec["from"]])
            assert C in shape or config.intermediate_size in shape
        elif rec["status"] == "copied":          # a donor projection in the mixer: its donor's width, heads repeated
            donor_rows = shapes[rec["from"]][0] // len(report.donor_tensors[rec["from"]]["roles"])
            assert shape[1:] == shapes[rec["from"]][1:] and shape[0] % donor_rows == 0, (name, shape)
    m = plan.memory()
    assert plan.peak_bytes == plan.donor_bytes + plan.fresh_bytes
    assert plan.student_bytes == plan.copied_bytes + plan.fresh_bytes
    assert m["donor_gib"] == pytest.approx(PARAMETERS[config_name(config)] * 2 / 1024**3)
    assert "planned memory (bfloat16)" in str(plan)


def test_hybrid_plan_keeps_the_chosen_layers_whole():
    config = big_config("Llama-3.1-70B")
    plan = plan_transfer(config, mixer="gla", attention_layers=[1, -1], copy="default")
    fates = plan.report.donor_tensors
    for layer in (1, 79):
        for proj in "qkvo":
            assert fates[f"model.layers.{layer}.self_attn.{proj}_proj.weight"]["status"] == "copied"
    assert fates["model.layers.2.self_attn.q_proj.weight"]["status"] == "unused"


def test_convert_plan_reads_only_the_config(tmp_path, capsys):
    from xatl.cli.main import main

    big_config("Mistral-7B").save_pretrained(tmp_path)
    assert main(["convert", "--donor", str(tmp_path), "--mixer", "retention", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "planned memory (float32): donor 26.98 GiB" in out and "xatl convert holds" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    assert main(["convert", "--donor", str(tmp_path), "--mixer", "retention"]) == 2
    assert "--out is required" in capsys.readouterr().err

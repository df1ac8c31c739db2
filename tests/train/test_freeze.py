"""The paper's recipe: copied weights (by the transfer report's names) frozen, then unfrozen by a schedule."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import quick

import xatl
from xatl.train import LITRule, train
from xatl.train.metrics import step_records


def _snapshots(record_at):
    """An on_step hook that keeps a copy of the state dict after the given steps."""
    snaps = {}

    def hook(step, record, model):
        if step in record_at:
            snaps[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return snaps, hook


def test_copied_weights_frozen_then_trained_after_step_unfreeze(student_dir, data, tmp_path):
    report = xatl.TransferReport.load(student_dir)
    copied = set(report.copied_parameters())
    initial = xatl.XATLForCausalLM.from_pretrained(student_dir).state_dict()
    snaps, hook = _snapshots({3, 8})
    cfg = quick(student_dir, tmp_path / "run", unfreeze="step:3", unfreeze_warmup_steps=4)
    result = train(cfg, data, progress=False, on_step=hook)
    assert result.unfrozen_after == 3
    # tied: lm_head.weight is reported "tied" to the copied embedding and follows it
    assert report.student_tensors["lm_head.weight"]["status"] == "tied" and "model.embed_tokens.weight" in copied
    for name, t in initial.items():
        was_copied = name in copied or name == "lm_head.weight"
        same_while_frozen = torch.equal(snaps[3][name], t)
        assert same_while_frozen == was_copied, name      # copied: bit-identical; fresh: changed
        assert not torch.equal(snaps[8][name], t), name   # after unfreezing everything has trained
    recs = step_records(result.metrics_path)
    assert [r["frozen"] for r in recs] == [True] * 3 + [False] * 5
    assert all(r["lr_copied"] == 0.0 for r in recs[:3]) and all(r["lr_copied"] > 0 for r in recs[3:])
    # own group, the paper's re-warm: a 4-step linear ramp from the unfreeze point up to the main schedule's value
    # at its end (step 7), then the main schedule itself
    assert [r["lr_copied"] for r in recs[3:6]] == pytest.approx([recs[6]["lr"] * k / 4 for k in (1, 2, 3)])
    assert [r["lr_copied"] for r in recs[6:]] == pytest.approx([r["lr"] for r in recs[6:]])


def test_the_earlier_variant_keeps_its_own_defaults(student_dir, tmp_path):
    paper = quick(student_dir, tmp_path / "a", max_steps=290, unfreeze="lit:threshold=0.01")
    assert (paper.copied_lr, paper.copied_warmup) == (paper.lr, 4)           # 2k of 145k steps
    old = quick(student_dir, tmp_path / "b", max_steps=290, unfreeze="lit-consecutive:threshold=0.01")
    assert (old.copied_lr, old.copied_warmup) == (pytest.approx(old.lr / 10), old.lm_warmup)
    assert quick(student_dir, tmp_path / "c", unfreeze="lit-consecutive:threshold=0.01",
                 unfreeze_lr=0.5).copied_lr == 0.5


def test_never_keeps_copied_weights_exact_and_final_dir_loads(student_dir, data, tmp_path):
    report = xatl.TransferReport.load(student_dir)
    initial = xatl.XATLForCausalLM.from_pretrained(student_dir).state_dict()
    result = train(quick(student_dir, tmp_path / "run", max_steps=4), data, progress=False)
    final = xatl.XATLForCausalLM.from_pretrained(result.final_dir).state_dict()
    for name in report.copied_parameters():
        assert torch.equal(final[name], initial[name]), name
    assert not torch.equal(final["model.layers.0.mixer.q_proj.weight"], initial["model.layers.0.mixer.q_proj.weight"])
    assert (result.final_dir / "transfer_report.json").is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_step"] == 4 and summary["tokens"] == 4 * 4 * 16 and summary["flops"] > 0


def test_lit_unfreezes_where_the_rule_says_on_the_logged_losses(student_dir, data, tmp_path):
    """The trainer's unfreeze step equals the pure rule replayed on the losses the run logged."""
    spec = "lit:threshold=0.002,patience=1,window=2"
    result = train(quick(student_dir, tmp_path / "run", max_steps=16, unfreeze=spec), data, progress=False)
    losses = [r["loss"] for r in step_records(result.metrics_path)]
    rule = LITRule(0.002, 1, 2)
    expected = next((s for s, x in enumerate(losses, 1) if rule.update(x)), None)
    assert result.unfrozen_after == expected
    assert expected is not None, "the scripted run should stall within 16 steps (random tokens)"
    recs = step_records(result.metrics_path)
    assert [r["frozen"] for r in recs] == [s <= expected for s in range(1, 17)]
    assert recs[expected - 1].get("unfrozen") is True

"""Beyond the paper: attention alignment, distillation from the donor, and LoRA on the copied weights."""

from __future__ import annotations

import pytest
import torch
from train_helpers import quick

import xatl
from tiny import tiny_donor
from xatl.train import AlignConfig, KDConfig, LoRAConfig, train
from xatl.train.metrics import step_records
from xatl.train.teacher import alignment_errors, kl_to_donor, lm_loss


def _val_ids(data):
    return torch.tensor(data["validation"]["input_ids"])


def test_alignment_lowers_every_layers_error(student_dir, data, donor, tmp_path):
    ids = _val_ids(data)
    before = alignment_errors(xatl.XATLForCausalLM.from_pretrained(student_dir), donor, ids)
    cfg = quick(student_dir, tmp_path / "run", max_steps=1, align=AlignConfig(steps=30, lr=1e-2), freeze="copied",
                save_every=10)
    result = train(cfg, data, donor=donor, progress=False)
    aligned = xatl.XATLForCausalLM.from_pretrained(result.last_checkpoint / "model")
    after = alignment_errors(aligned, donor, ids)
    assert len(before) == len(after) == 3
    assert all(a < 0.7 * b for a, b in zip(after, before)), (before, after)
    recs = step_records(result.metrics_path)
    assert [r["stage"] for r in recs] == ["align"] * 30 + ["lm"]
    assert len(recs[0]["align_err"]) == 3 and recs[-2]["loss"] < recs[0]["loss"]
    s = result.summary["stages"]
    assert s["align"]["steps"] == 30 and s["align"]["flops"] > 0 and s["lm"]["steps"] == 1
    # only mixer weights moved during alignment, and copied ones (o_proj) stayed put (freeze="copied")
    orig = xatl.XATLForCausalLM.from_pretrained(student_dir).state_dict()
    ckpt = xatl.XATLForCausalLM.from_pretrained(tmp_path / "run" / "checkpoints" / "step-30" / "model").state_dict()
    report = xatl.TransferReport.load(student_dir)
    for name, t in orig.items():
        changed = not torch.equal(ckpt[name], t)
        trainable = ".mixer." in name and name not in report.copied_parameters()
        assert changed == trainable, name


@pytest.fixture(scope="module")
def sharp(tmp_path_factory):
    """A donor with peaked next-token distributions (larger init) and its student: KL has room to fall."""
    donor = tiny_donor("llama", initializer_range=0.1)
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), seed=0)
    return donor, xatl.save_student(student, tmp_path_factory.mktemp("sharp") / "student", report)


def test_distillation_lowers_kl_to_the_donor(sharp, data, tmp_path):
    donor, student_dir = sharp
    ids = _val_ids(data)
    before = kl_to_donor(xatl.XATLForCausalLM.from_pretrained(student_dir), donor, ids)
    kl = {}
    for weight in (1.0, 0.0):
        cfg = quick(student_dir, tmp_path / f"kd{weight}", max_steps=30, kd=KDConfig(weight=weight, temperature=1.0),
                    freeze="none", lr=1e-2, unfreeze_lr=1e-2, eval_every=0, save_every=0)
        result = train(cfg, data, donor=donor if weight else None, progress=False)
        kl[weight] = kl_to_donor(xatl.XATLForCausalLM.from_pretrained(result.final_dir), donor, ids)
        if weight:
            recs = step_records(result.metrics_path)
            assert recs[-1]["kd_loss"] < recs[0]["kd_loss"]
            assert result.summary["stages"]["lm"]["flops"] > 0
    assert kl[1.0] < 0.7 * before and kl[1.0] < 0.7 * kl[0.0], (before, kl)


def test_lora_trains_adapters_not_the_copied_weights(student_dir, data, tmp_path):
    report = xatl.TransferReport.load(student_dir)
    orig = xatl.XATLForCausalLM.from_pretrained(student_dir).state_dict()
    cfg = quick(student_dir, tmp_path / "run", max_steps=8, unfreeze="step:2", lora=LoRAConfig(rank=4), lr=1e-2)
    result = train(cfg, data, progress=False)
    assert result.summary["parameters"]["fixed"] > 0 and result.summary["parameters"]["copied"] > 0
    # checkpoints keep the copied weights untouched under the adapters, which are saved beside them
    ckpt = result.last_checkpoint
    base = xatl.XATLForCausalLM.from_pretrained(ckpt / "model").state_dict()
    for name in report.copied_parameters():
        assert torch.equal(base[name], orig[name]), name
    assert (ckpt / "adapter.safetensors").is_file()
    # final/ is merged: copied linear weights now differ (adapters folded in), embeddings (not LoRA'd) do not
    final = xatl.XATLForCausalLM.from_pretrained(result.final_dir).state_dict()
    assert not torch.equal(final["model.layers.0.mlp.up_proj.weight"], orig["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(final["model.embed_tokens.weight"], orig["model.embed_tokens.weight"])
    assert set(final) == set(orig)
    # the merged model computes what the adapted model computed: the same loss as the last evaluation
    model = xatl.XATLForCausalLM.from_pretrained(result.final_dir).eval()
    with torch.no_grad():
        merged = lm_loss(model(input_ids=_val_ids(data)).logits, _val_ids(data)).item()
    assert merged == pytest.approx(result.val_loss, abs=1e-5)


def test_lora_resume_is_exact(student_dir, data, tmp_path):
    kw = dict(max_steps=6, unfreeze="step:3", lora=LoRAConfig(rank=2), save_every=2, lr=1e-2)
    ref = train(quick(student_dir, tmp_path / "ref", **kw), data, progress=False)

    def kill(step, record, model):
        if step == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(quick(student_dir, tmp_path / "run", **kw), data, progress=False, on_step=kill)
    resumed = train(quick(student_dir, tmp_path / "run", resume=True, **kw), data, progress=False)
    a = [r["loss"] for r in step_records(ref.metrics_path)]
    b = [r["loss"] for r in step_records(resumed.metrics_path)]
    assert len(a) == len(b) == 6 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-6

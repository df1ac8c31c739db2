"""What a run leaves behind and the less common paths: TensorBoard, bf16 autocast, no validation, resuming
inside the alignment stage."""

from __future__ import annotations

import json
import math

import pytest
from train_helpers import quick

import xatl
from xatl.train import AlignConfig, train
from xatl.train.accounting import matmul_params
from xatl.train.metrics import read_metrics, step_records


def test_tensorboard_summary_and_no_validation(student_dir, data, tmp_path):
    result = train(quick(student_dir, tmp_path / "run", max_steps=3, tensorboard=True, eval_batches=0), data,
                   progress=False)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert result.val_loss is None and all("val_loss" not in r for r in read_metrics(result.metrics_path))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("final_step", "tokens", "flops", "wall_seconds", "stages", "unfrozen_after", "parameters", "config"):
        assert key in summary
    lm = summary["stages"]["lm"]
    assert lm["tokens"] == 3 * 4 * 16 and lm["flops"] == pytest.approx(summary["flops"])
    # 6N-style accounting with frozen weights: 2N forward + 2N backward to activations + 2N_trainable to weights,
    # plus 3x the LCI mixing term (4 d_head d_attn per layer and token); N excludes the (tied) embedding lookup
    model = xatl.XATLForCausalLM.from_pretrained(student_dir)
    n = matmul_params(model)
    assert n == sum(p.numel() for p in model.parameters())            # tied: the LM head matmul counts once
    c = model.config
    mixing = c.num_hidden_layers * 4 * c.head_dim * (c.num_attention_heads * c.head_dim)
    assert lm["flops"] / lm["tokens"] == pytest.approx(4 * n + 2 * summary["parameters"]["fresh"] + 3 * mixing)


def test_bf16_autocast_trains(student_dir, data, tmp_path):
    result = train(quick(student_dir, tmp_path / "run", max_steps=2, bf16=True), data, progress=False)
    assert result.summary["bf16"] is True
    assert all(math.isfinite(r["loss"]) for r in step_records(result.metrics_path))


def test_resume_inside_the_alignment_stage_is_exact(student_dir, data, donor, tmp_path):
    kw = dict(max_steps=2, align=AlignConfig(steps=4, lr=1e-2), save_every=2, eval_every=0)
    ref = train(quick(student_dir, tmp_path / "ref", **kw), data, donor=donor, progress=False)

    def kill(step, record, model):
        if step == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(quick(student_dir, tmp_path / "run", **kw), data, donor=donor, progress=False, on_step=kill)
    resumed = train(quick(student_dir, tmp_path / "run", resume=True, **kw), data, donor=donor, progress=False)
    a, b = step_records(ref.metrics_path), step_records(resumed.metrics_path)
    assert [r["stage"] for r in b] == ["align"] * 4 + ["lm"] * 2
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b)) <= 1e-6
    assert max(abs(u - v) for x, y in zip(a[:4], b[:4]) for u, v in zip(x["align_err"], y["align_err"])) <= 1e-6


def test_progress_bar_says_what_the_copied_weights_do():
    from xatl.train.metrics import postfix

    rec = {"loss": 1.0, "tokens_per_s": 10.0, "lr": 1e-3, "stage": "lm", "frozen": False}
    assert "copied" not in postfix(rec, has_copied=False)                 # a from-scratch model copied nothing
    assert postfix(rec)["copied"] == "unfrozen" and postfix(dict(rec, frozen=True))["copied"] == "frozen"
    assert postfix(rec, lora=True)["copied"] == "lora" and postfix(dict(rec, stage="align"))["copied"] == "align"


def test_openmp_workers_sleep_by_default_unless_the_user_says_otherwise():
    import os
    import subprocess
    import sys

    code = "import os, xatl; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, OMP_WAIT_POLICY="ACTIVE"), capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"

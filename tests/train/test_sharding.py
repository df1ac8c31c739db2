"""FSDP2 sharding (``--sharding fsdp``): two CPU processes (gloo, torchrun) train like one process with the same
global batch (micro-batch 2 x 2 processes vs micro-batch 2 x grad_accum 2), through the freeze schedule (the
copied weights unfreeze mid-run), checkpoints, a resume, LoRA and the alignment stage; and the refusals.

Tolerance: 1e-5 on every logged loss and on every saved weight, as for DDP (``test_distributed.py``): the
reduce-scatter may sum the two processes' gradients in another order than local accumulation does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from test_distributed import _free_port
from train_helpers import quick

import subproc
from xatl.errors import TrainingError
from xatl.train import train
from xatl.train.metrics import step_records

TOL = 1e-5
ARGS = ["--batch-size", "2", "--eval-every", "2", "--eval-batches", "3", "--log-every", "1", "--lr", "3e-3",
        "--warmup-steps", "1", "--no-tensorboard", "--no-progress"]
QUICK = dict(micro_batch_size=2, grad_accum=2, eval_every=2, eval_batches=3, lr=3e-3)


def torchrun(student_dir, data_dir, out, *args, sharding="fsdp"):
    """``torchrun --nproc_per_node 2 -m xatl.cli.main train --sharding fsdp ...`` on CPU."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "xatl.cli.main", "train", "--model", str(student_dir), "--data", str(data_dir), "--out", str(out),
           "--sharding", sharding, *ARGS, *args]
    proc = subproc.run(cmd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_same_run(a: Path, b: Path) -> None:
    ra, rb = step_records(a / "metrics.jsonl"), step_records(b / "metrics.jsonl")
    assert [r["step"] for r in ra] == [r["step"] for r in rb] and ra
    for x, y in zip(ra, rb):
        assert x["stage"] == y["stage"] and x["frozen"] == y["frozen"] and x["tokens"] == y["tokens"]
        assert abs(x["loss"] - y["loss"]) <= TOL, (x, y)
        assert (x.get("val_loss") is None) == (y.get("val_loss") is None)
        assert x.get("val_loss") is None or abs(x["val_loss"] - y["val_loss"]) <= TOL
    assert_same_weights(a / "final", b / "final")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=TOL), k


@pytest.fixture
def data_dir(data, tmp_path):
    path = tmp_path / "blocks"
    data.save_to_disk(str(path))
    return path


@pytest.mark.slow
def test_fsdp_two_processes_match_one_through_unfreeze_and_resume(student_dir, data, data_dir, tmp_path):
    torchrun(student_dir, data_dir, tmp_path / "fsdp", "--steps", "6", "--unfreeze", "step:3", "--save-every", "3")
    one = train(quick(student_dir, tmp_path / "one", max_steps=6, unfreeze="step:3", save_every=3, **QUICK), data,
                progress=False)
    assert_same_run(tmp_path / "fsdp", one.metrics_path.parent)
    assert_same_weights(tmp_path / "fsdp/checkpoints/step-3/model", tmp_path / "one/checkpoints/step-3/model")
    summary = json.loads((tmp_path / "fsdp/summary.json").read_text())
    assert summary["sharding"] == "fsdp" and summary["processes"] == 2 and summary["unfrozen_after"] == 3
    # a checkpoint of a sharded run holds the same files as an unsharded one: the tied head is written once
    assert "lm_head.weight" not in load_file(str(tmp_path / "fsdp/checkpoints/step-3/model/model.safetensors"))

    # resume from step 3 (just after the unfreezing) and end where the uninterrupted run ended: sharded, and as
    # two DDP processes (a sharded run's checkpoint holds the same files as an unsharded one's)
    for resumed, sharding in (("resumed", "fsdp"), ("crossed", "none")):
        shutil.copytree(tmp_path / "fsdp", tmp_path / resumed)
        for name in ("checkpoints/step-6", "final", "summary.json"):
            p = tmp_path / resumed / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        torchrun(student_dir, data_dir, tmp_path / resumed, "--steps", "6", "--unfreeze", "step:3", "--save-every",
                 "3", "--resume", sharding=sharding)
        assert_same_weights(tmp_path / resumed / "final", tmp_path / "fsdp/final")


@pytest.mark.slow
def test_fsdp_lora_alignment_and_distillation_match_one_process(student_dir, donor, data, data_dir, tmp_path):
    donor.save_pretrained(tmp_path / "donor")
    extra = dict(align={"steps": 2}, kd={"weight": 0.5}, lora={"rank": 4}, unfreeze="step:1",
                 donor=str(tmp_path / "donor"))
    torchrun(student_dir, data_dir, tmp_path / "fsdp", "--steps", "3", "--unfreeze", "step:1", "--save-every", "0",
             "--align-steps", "2", "--kd-weight", "0.5", "--lora-rank", "4", "--donor", str(tmp_path / "donor"))
    one = train(quick(student_dir, tmp_path / "one", max_steps=3, save_every=0, **QUICK, **extra), data,
                progress=False)
    assert_same_run(tmp_path / "fsdp", one.metrics_path.parent)
    records = step_records(tmp_path / "fsdp/metrics.jsonl")
    assert [r["stage"] for r in records] == ["align"] * 2 + ["lm"] * 3 and "align_err" in records[0]


def test_fsdp_needs_several_processes(student_dir, data, tmp_path):
    with pytest.raises(TrainingError, match="needs several processes"):
        train(quick(student_dir, tmp_path / "run", sharding="fsdp"), data, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind, version, match", [("FSDP", 1, "FSDP version 1"), ("DEEPSPEED", None, "DEEPSPEED")])
def test_accelerate_engines_other_than_fsdp2_are_refused(monkeypatch, kind, version, match):
    import accelerate
    from accelerate.utils import DistributedType

    from xatl.train import setup

    fake = SimpleNamespace(distributed_type=DistributedType[kind],
                           state=SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=version)))
    monkeypatch.setattr(accelerate, "Accelerator", lambda **kw: fake)
    with pytest.raises(TrainingError, match=match):
        setup.make_accelerator()


def test_accelerate_fsdp2_selects_sharding(monkeypatch):
    import accelerate
    from accelerate.utils import DistributedType

    from xatl.train import setup

    fake = SimpleNamespace(distributed_type=DistributedType.FSDP,
                           state=SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=2)))
    monkeypatch.setattr(accelerate, "Accelerator", lambda **kw: fake)
    assert setup.make_accelerator() == (fake, True)


def test_a_model_without_block_classes_cannot_be_sharded():
    from xatl.train.sharding import block_classes

    with pytest.raises(TrainingError, match="_no_split_modules"):
        block_classes(torch.nn.Linear(2, 2))


def test_the_other_processes_build_on_the_meta_device(student_dir):
    """Under sharding only the main process reads the weights; the others hold the architecture on the meta device
    (no memory) until their shards arrive (the two-process tests above run this path on process 1)."""
    from xatl.train.setup import load_for_training

    model = load_for_training(student_dir, meta=True)
    assert model.training and all(p.is_meta for p in model.parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight          # tied as in the saved student

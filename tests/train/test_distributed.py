"""DDP: two processes launched by ``accelerate launch`` on CPU (gloo) train like one process with the same
global batch (micro-batch 2 x 2 processes vs micro-batch 2 x grad_accum 2).

Tolerance: 1e-5 on every logged loss. The two runs read the same blocks in the same order, but the gradient
mean is summed in another order (gloo all-reduce vs local accumulation), so float32 rounding may differ slightly.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
from train_helpers import quick

import subproc
from xatl.train import train
from xatl.train.metrics import step_records

TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(student_dir, data, tmp_path):
    accelerate = Path(sys.executable).parent / "accelerate"
    if not accelerate.exists() and shutil.which("accelerate") is None:
        pytest.skip("the accelerate launcher is not installed")
    saved = tmp_path / "blocks"
    data.save_to_disk(str(saved))
    args = ["--steps", "6", "--batch-size", "2", "--unfreeze", "step:3", "--eval-every", "2", "--eval-batches", "2",
            "--save-every", "3", "--log-every", "1", "--lr", "3e-3", "--warmup-steps", "1", "--no-tensorboard",
            "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [str(accelerate if accelerate.exists() else "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(_free_port()), "-m", "xatl.cli.main", "train", "--model", str(student_dir), "--data", str(saved),
           "--out", str(tmp_path / "ddp"), *args]
    proc = subproc.run(cmd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = train(quick(student_dir, tmp_path / "one", max_steps=6, micro_batch_size=2, grad_accum=2, unfreeze="step:3",
                      eval_every=2, eval_batches=2, save_every=3, lr=3e-3), data, progress=False)
    ddp, ref = step_records(tmp_path / "ddp" / "metrics.jsonl"), step_records(one.metrics_path)
    assert [r["step"] for r in ddp] == [r["step"] for r in ref] == list(range(1, 7))
    for a, b in zip(ddp, ref):
        assert abs(a["loss"] - b["loss"]) <= TOL and a["frozen"] == b["frozen"] and a["tokens"] == b["tokens"]
        assert (a.get("val_loss") is None) == (b.get("val_loss") is None)
        assert a.get("val_loss") is None or abs(a["val_loss"] - b["val_loss"]) <= TOL
    import json

    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["global_batch"] == 4 and summary["unfrozen_after"] == 3

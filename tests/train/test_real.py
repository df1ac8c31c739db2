"""The whole path on the real SmolLM2-135M donor: convert, tokenize a corpus with its tokenizer, train, save."""

from __future__ import annotations

import math

import pytest

import xatl
from xatl.data import DataConfig
from xatl.train import TrainConfig, train
from xatl.train.metrics import step_records


@pytest.mark.real
@pytest.mark.slow
def test_smollm2_student_trains_on_wiki(smollm2_dir, tmp_path):
    from transformers import AutoTokenizer

    student = xatl.convert(smollm2_dir, tmp_path / "student", mixer="retention").path
    cfg = TrainConfig(model=str(student), out_dir=str(tmp_path / "run"), max_steps=2, micro_batch_size=1,
                      data=DataConfig(sources=["wiki"], block_size=32, max_documents=20,
                                      cache_dir=str(tmp_path / "cache")),
                      unfreeze="step:1", eval_batches=1, save_every=0, tensorboard=False)
    result = train(cfg, progress=False)
    recs = step_records(result.metrics_path)
    assert [r["frozen"] for r in recs] == [True, False] and all(math.isfinite(r["loss"]) for r in recs)
    assert 1.0 < recs[0]["loss"] < 15.0          # a sane range (uniform over the 49152 tokens: 10.8)
    assert AutoTokenizer.from_pretrained(result.final_dir).eos_token_id is not None
    assert (result.final_dir / "transfer_report.json").is_file()

"""Shared helpers of the training tests: random-token datasets and a quick TrainConfig."""

from __future__ import annotations

import torch
from datasets import Dataset, DatasetDict

from tiny import VOCAB

BLOCK = 16


def blocks(n: int, seed: int, block: int = BLOCK) -> Dataset:
    """``n`` random-token blocks of ``block`` ids (a Dataset with column input_ids)."""
    g = torch.Generator().manual_seed(seed)
    return Dataset.from_dict({"input_ids": torch.randint(0, VOCAB, (n, block), generator=g).tolist()})


def make_data(n_train: int = 64, n_val: int = 8, block: int = BLOCK) -> DatasetDict:
    return DatasetDict(train=blocks(n_train, 1, block), validation=blocks(n_val, 2, block))


def quick(student_dir, out, **kw):
    """A TrainConfig for a few fast steps (no TensorBoard, every step logged)."""
    from xatl.train import TrainConfig

    base = dict(model=str(student_dir), out_dir=str(out), max_steps=8, micro_batch_size=4, grad_accum=1, lr=3e-3,
                warmup_steps=1, eval_every=4, eval_batches=2, save_every=4, log_every=1, tensorboard=False,
                unfreeze="never")
    base.update(kw)
    return TrainConfig(**base)

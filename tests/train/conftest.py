"""Fixtures of the training tests: a tiny converted student on disk and small random-token datasets."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset, DatasetDict

import xatl
from tiny import VOCAB, tiny_donor

BLOCK = 16


def blocks(n: int, seed: int, block: int = BLOCK) -> Dataset:
    """``n`` random-token blocks of ``block`` ids (a Dataset with column input_ids)."""
    g = torch.Generator().manual_seed(seed)
    return Dataset.from_dict({"input_ids": torch.randint(0, VOCAB, (n, block), generator=g).tolist()})


def make_data(n_train: int = 64, n_val: int = 8, block: int = BLOCK) -> DatasetDict:
    return DatasetDict(train=blocks(n_train, 1, block), validation=blocks(n_val, 2, block))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and do not fight the other tests' threads); restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def donor():
    """The tiny Llama donor (GQA, tied embeddings) that every test student is converted from."""
    return tiny_donor("llama")


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory, donor):
    """A retention student of the tiny donor, saved with its transfer report (paper default copy set)."""
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"), seed=0)
    return xatl.save_student(student, tmp_path_factory.mktemp("student") / "retention", report)


@pytest.fixture(scope="session")
def data():
    return make_data()


def quick(student_dir, out, **kw):
    """A TrainConfig for a few fast steps (no TensorBoard, every step logged)."""
    from xatl.train import TrainConfig

    base = dict(model=str(student_dir), out_dir=str(out), max_steps=8, micro_batch_size=4, grad_accum=1, lr=3e-3,
                warmup_steps=1, eval_every=4, eval_batches=2, save_every=4, log_every=1, tensorboard=False,
                unfreeze="never")
    base.update(kw)
    return TrainConfig(**base)

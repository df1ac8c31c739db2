"""Training data for the trainer: packed ``input_ids`` blocks, a deterministic order, and exact positions.

The training blocks are read in a seeded random order, one permutation per epoch. The order is a function of
(seed, epoch) only, and a position in it is one integer (blocks consumed so far), so a resumed run reads exactly
the blocks the uninterrupted run would have read, whatever the number of processes. Optimizer step s uses the
global batch ``stream[s*G : (s+1)*G]`` with ``G = micro_batch_size * grad_accum * processes``; micro-batch m of
process r is its slice ``[(m * processes + r) * b : ... + b]``, so one process with ``grad_accum * processes``
micro-batches sees exactly the same global batch.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch

from ..errors import DataError

log = logging.getLogger(__name__)


def resolve_dataset(dataset, cfg, tokenizer, model_config):
    """(train, validation or None) ``datasets.Dataset`` of ``input_ids`` blocks, from what ``train()`` was given:
    a DatasetDict, a Dataset (no validation), or None (built from ``cfg.data`` with the model's tokenizer)."""
    from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

    if dataset is None:
        if cfg.data is None:
            raise DataError("no training data: pass a dataset to train() or set TrainConfig.data (--data)")
        if tokenizer is None:
            raise DataError(f"the model at {cfg.model!r} has no tokenizer to tokenize the data with; save the "
                            "donor's tokenizer beside it or pass ready token blocks")
        from ..data import build_lm_dataset

        dataset = build_lm_dataset(cfg.data, tokenizer,
                                   max_length=getattr(model_config, "max_position_embeddings", None))
    if isinstance(dataset, (IterableDataset, IterableDatasetDict)):
        raise DataError("streaming datasets are not supported by the trainer (its exact resume needs random access);"
                        " build the data without streaming")
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise DataError(f"the dataset has splits {sorted(dataset)}, no 'train'; pass train (and validation)")
        train, val = dataset["train"], dataset.get("validation")
    elif isinstance(dataset, Dataset):
        train, val = dataset, None
    else:
        raise DataError(f"expected a datasets.Dataset or DatasetDict of input_ids blocks, got {type(dataset).__name__}")
    for name, split in (("train", train), ("validation", val)):
        if split is not None and "input_ids" not in split.column_names:
            raise DataError(f"the {name} split has columns {split.column_names}, no 'input_ids'")
    if val is not None and len(val) == 0:
        val = None
    return train, val


class Blocks:
    """Random access to a split's blocks as a (N, T) int64 tensor view per request."""

    def __init__(self, split, vocab_size: int, max_length: int | None, what: str):
        self.split = split.with_format("numpy", columns=["input_ids"])
        self.n = len(split)
        if self.n == 0:
            raise DataError(f"the {what} split is empty; add data")
        first = np.asarray(self.split[0]["input_ids"])
        self.block_size = int(first.shape[-1])
        if self.block_size < 2:
            raise DataError(f"{what} blocks hold {self.block_size} token(s); a block needs at least 2")
        if max_length is not None and self.block_size > max_length:
            raise DataError(f"{what} blocks are {self.block_size} tokens, longer than the model's context of "
                            f"{max_length}; rebuild the data with block_size <= {max_length}")
        self.vocab_size = vocab_size

    def get(self, indices) -> torch.Tensor:
        """(len(indices), T) int64 token ids; DataError for ragged blocks or ids outside the vocabulary."""
        rows = self.split[list(map(int, indices))]["input_ids"]
        try:
            arr = np.stack([np.asarray(r) for r in rows]) if isinstance(rows, list) else np.asarray(rows)
        except ValueError:
            raise DataError("blocks differ in length; pack the data into equal blocks (xatl.data)") from None
        if arr.ndim != 2 or arr.shape[1] != self.block_size:
            raise DataError(f"blocks differ in length ({arr.shape[-1]} vs {self.block_size}); pack the data into "
                            "equal blocks (xatl.data)")
        if arr.size and (arr.max() >= self.vocab_size or arr.min() < 0):
            raise DataError(f"token id {int(arr.max())} is outside the model's vocabulary of {self.vocab_size}; "
                            "tokenize the data with the model's own tokenizer")
        return torch.from_numpy(arr.astype(np.int64))

    def fingerprint(self) -> str:
        """A cheap content hash (size, block size, a few blocks) to tell whether a resume sees the same data."""
        h = hashlib.sha256(f"{self.n}x{self.block_size}".encode())
        for i in sorted({0, self.n // 3, self.n // 2, self.n - 1}):
            h.update(self.get([i]).numpy().tobytes())
        return h.hexdigest()[:16]


class BlockStream:
    """The seeded, epoch-wise shuffled order of the training blocks, addressed by absolute position."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, start: int, count: int) -> list[int]:
        """Block indices at stream positions ``start .. start + count - 1``."""
        out = []
        pos = start
        while len(out) < count:
            epoch, offset = divmod(pos, self.n)
            take = min(count - len(out), self.n - offset)
            out += self._permutation(epoch)[offset:offset + take].tolist()
            pos += take
        return out


def micro_batches(stream: BlockStream, blocks: Blocks, position: int, micro: int, accum: int, world: int,
                  rank: int) -> list[torch.Tensor]:
    """This process's ``accum`` micro-batches (each (micro, T)) of the global batch that starts at ``position``."""
    global_idx = stream.indices(position, micro * accum * world)
    out = []
    for m in range(accum):
        start = (m * world + rank) * micro
        out.append(blocks.get(global_idx[start:start + micro]))
    return out


def eval_chunks(blocks: Blocks, micro: int, batches: int) -> list[list[int]]:
    """The block indices of every validation micro-batch: the first ``batches * micro`` blocks, ``micro`` at a time."""
    total = min(blocks.n, max(1, batches) * micro)
    return [list(range(s, min(s + micro, total))) for s in range(0, total, micro)]


def eval_batches(blocks: Blocks, micro: int, batches: int, world: int, rank: int) -> list[torch.Tensor]:
    """This process's share of the first ``batches * micro`` validation blocks (the same ones every time)."""
    return [blocks.get(c) for i, c in enumerate(eval_chunks(blocks, micro, batches)) if i % world == rank]


def check_enough(blocks: Blocks, global_batch: int) -> None:
    if blocks.n < global_batch:
        raise DataError(f"the training data holds {blocks.n} blocks but one optimizer step needs {global_batch} "
                        "(micro_batch_size * grad_accum * processes); add data or lower the batch size")

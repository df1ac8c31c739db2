"""Training where the student will run: at equal tokens and steps, healing on long blocks gives a student that
recalls better deep into a sequence than healing on short blocks (the tiny periodic donor; recall = continuing
the period from tokens beyond the sliding window, so the linear part has to carry it)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset, DatasetDict
from heal_helpers import BLOCK, periodic_blocks, save_donor, trained_donor

from xatl.heal import HealConfig, heal
from xatl.models import XATLForCausalLM

SHORT = 8


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory):
    return save_donor(tmp_path_factory.mktemp("donor") / "periodic")


def _data(block: int) -> DatasetDict:
    """The same tokens either way: 512 periodic sequences of BLOCK, cut into blocks of ``block``."""
    def cut(x: torch.Tensor) -> list:
        return x.reshape(-1, block).tolist()
    return DatasetDict(train=Dataset.from_dict({"input_ids": cut(periodic_blocks(512, 1))}),
                       validation=Dataset.from_dict({"input_ids": cut(periodic_blocks(16, 2))}))


def _heal(donor_dir, out, block: int):
    per_step = 256                                                 # tokens per step, both runs
    cfg = HealConfig(donor=str(donor_dir), out_dir=str(out), mixer="lolcats",
                     mixer_options={"window": 2, "chunk_size": 8, "decay_span": 0, "linear_rope": True,   # LoLCATs
                                    "sparse_cache": 0},                          # (64 pairs: whole tiny blocks)
                     budget="60steps", block_size=block,
                     micro_batch_size=per_step // block, eval_every=0, eval_batches=0, eval_documents=0,
                     lora_rank=4, align_fraction=0.5)
    return heal(cfg, donor=trained_donor()[0], dataset=_data(block), progress=False)


@torch.no_grad()
def _late_recall(model_dir) -> float:
    """Greedy next-token accuracy at positions 16..31 of fresh periodic sequences (the period is 6, the window 2)."""
    model = XATLForCausalLM.from_pretrained(model_dir).eval()
    ids = periodic_blocks(64, 99)
    pred = model(input_ids=ids).logits.argmax(-1)
    return (pred[:, 15:BLOCK - 1] == ids[:, 16:]).float().mean().item()


def test_long_blocks_recall_better_late_in_the_sequence(donor_dir, tmp_path):
    long = _heal(donor_dir, tmp_path / "long", BLOCK)
    short = _heal(donor_dir, tmp_path / "short", SHORT)
    assert long.results["summary"]["tokens"] == short.results["summary"]["tokens"]
    a, b = _late_recall(long.final_dir), _late_recall(short.final_dir)
    print(f"late recall: long blocks {a:.3f}, short blocks {b:.3f}")
    assert a > b + 0.1

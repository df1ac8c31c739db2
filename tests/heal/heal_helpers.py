"""A tiny *trained* donor for the healing tests: a 2-layer Llama that has learnt to continue periodic token
sequences (a task only attention over the earlier period solves), saved as an HF directory."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict

from tiny import VOCAB, tiny_donor

PERIOD, BLOCK = 6, 32


def periodic_blocks(n: int, seed: int) -> torch.Tensor:
    """(n, BLOCK) ids: a random pattern of PERIOD tokens, repeated."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.randint(1, VOCAB, (n, PERIOD), generator=g)
    return pattern.repeat(1, -(-BLOCK // PERIOD))[:, :BLOCK]


def periodic_data(n_train: int = 256, n_val: int = 16) -> DatasetDict:
    return DatasetDict(train=Dataset.from_dict({"input_ids": periodic_blocks(n_train, 1).tolist()}),
                       validation=Dataset.from_dict({"input_ids": periodic_blocks(n_val, 2).tolist()}))


@cache
def trained_donor(steps: int = 150):
    """The tiny Llama donor trained on periodic sequences until it copies the period (loss well below ln VOCAB)."""
    torch.manual_seed(0)
    model = tiny_donor("llama", num_hidden_layers=2, hidden_size=64, intermediate_size=128).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        ids = periodic_blocks(32, 100 + step)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval().requires_grad_(False)
    return model, loss.item()


def save_donor(path):
    model, _ = trained_donor()
    model.save_pretrained(path)
    return path


def val_losses(out) -> dict[int, float]:
    """{step: validation loss} of the heal run in ``out``."""
    from xatl.train.metrics import read_metrics

    return {r["step"]: r["val_loss"] for r in read_metrics(out / "train" / "metrics.jsonl") if "val_loss" in r}


def heal_with_alignment_probe(cfg, donor, probe_step: int = 30):
    """Heal the tiny trained ``donor`` on the periodic data, measuring every layer's attention-alignment error on
    fixed blocks before healing (the converted student) and at ``probe_step`` (the last attention-transfer step);
    -> (the heal result, errors before, errors after)."""
    from xatl.heal import heal
    from xatl.models import XATLForCausalLM
    from xatl.train.teacher import alignment_errors

    ids = periodic_blocks(8, 7)
    seen = {}

    def on_step(step, record, model):
        if step == probe_step:
            seen["after"] = alignment_errors(model, donor, ids)

    result = heal(cfg, donor=donor, dataset=periodic_data(), progress=False, on_step=on_step)
    before = alignment_errors(XATLForCausalLM.from_pretrained(Path(cfg.out_dir) / "student"), donor, ids)
    return result, before, seen["after"]

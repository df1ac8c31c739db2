"""``xatl heal --attention-layers auto:K``: convert a pure student, align it briefly, choose the K softmax layers
by the long-context criterion of :mod:`xatl.heal.select`, and save the hybrid with the aligned mixers kept."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import torch

from ..errors import ConfigError
from .config import HealConfig
from .select import align_probe, select_attention_layers


def probe_batches(cfg: HealConfig, dataset, tokenizer, donor_config, steps: int) -> list[torch.Tensor]:
    """``steps`` micro-batches (micro_batch_size, block_size) of training blocks, in a seeded order."""
    from ..data import DataConfig
    from ..train.data import resolve_dataset

    data = DataConfig(sources=cfg.data, block_size=cfg.block_size, max_documents=cfg.max_documents)
    train, _ = resolve_dataset(dataset, SimpleNamespace(data=data, model=cfg.donor), tokenizer, donor_config)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    B, n = cfg.micro_batch_size, len(train)
    return [torch.tensor([train[order[(s * B + j) % n]]["input_ids"] for j in range(B)]) for s in range(steps)]


def choose_layers(cfg: HealConfig, donor, pure_config, tokenizer, dataset, dest: Path, progress: bool):
    """(The hybrid student, saved to ``dest``; the selection record for heal.json's plan)."""
    from ..transfer import save_student, student_config, transfer

    k = cfg.auto_layers()
    if tokenizer is None:
        raise ConfigError("--attention-layers auto:K builds passkey probes with the donor's tokenizer, and the donor "
                          "has none; save its tokenizer beside it or list the layers (e.g. 0,10,20)")
    t0 = time.perf_counter()
    probe, report = transfer(donor, pure_config, "all", consume_donor=False, seed=cfg.seed)
    batches = probe_batches(cfg, dataset, tokenizer, donor.config, cfg.select_align_steps)
    if progress:
        print(f"heal: choosing {k} softmax layers: {cfg.select_align_steps} attention-transfer steps, then the "
              f"answer KL on {cfg.select_probes} passkey probes of {cfg.select_length} tokens with each layer "
              "switched back", flush=True)
    losses = align_probe(probe, donor, batches, cfg.align_lr, report)
    align_s = time.perf_counter() - t0
    sel = select_attention_layers(probe, donor, tokenizer, k, length=cfg.select_length, count=cfg.select_probes,
                                  seed=cfg.seed + 1, progress=progress)
    config = student_config(donor.config, mixer=cfg.mixer, attention_layers=sel.layers,
                            mixer_options=cfg.mixer_options)
    student, report = transfer(donor, config, "all", consume_donor=False, seed=cfg.seed)
    missing, _ = student.load_state_dict(probe.state_dict(), strict=False)    # the aligned LCI mixers
    assert not missing, missing
    save_student(student, dest, report, tokenizer, overwrite=True)
    record = {**sel.to_dict(), "align_steps": len(losses), "align_losses": [round(x, 5) for x in losses],
              "align_seconds": round(align_s, 2), "seconds_total": round(time.perf_counter() - t0, 2)}
    if progress:
        print(f"heal: softmax layers {sel.layers} (answer KL {sel.base_kl:.3f} with none switched; "
              f"{min(sel.kl.values()):.3f}-{max(sel.kl.values()):.3f} with one)", flush=True)
    return student, record

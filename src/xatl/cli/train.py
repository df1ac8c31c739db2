"""``xatl train``: continued pretraining of a converted student (freeze/unfreeze, alignment, distillation, LoRA)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train a converted student (copied weights frozen, then unfrozen by a schedule); runs under accelerate launch"
DESCRIPTION = """Train a student from `xatl convert` (or any Hugging Face causal LM with --freeze none) on token blocks.

The paper's recipe is the default: the weights copied from the donor (as listed in the student's
transfer_report.json) start frozen and are released by the Loss Improvement Threshold rule, then train
with their own learning rate and warm-up. Optional: an attention-alignment stage (--align-steps), knowledge
distillation from the donor (--kd-weight), LoRA on the copied weights instead of unfreezing (--lora-rank).
Checkpoints go to OUT/checkpoints/step-N; a rerun with the same --out resumes from the latest one."""
EPILOG = """examples:
  xatl train --model students/smol-ret --data default --out runs/smol-ret --steps 2000 --block-size 512
  xatl train --model students/smol-ret --data wiki --out runs/r2 --unfreeze lit:threshold=0.01,patience=2
  xatl train --model students/smol-ret --data default --out runs/r3 --align-steps 200 --kd-weight 0.5 \\
             --donor smollm2-135m --unfreeze step:500
  accelerate launch --multi_gpu --num_processes 2 -m xatl.cli.main train --model S --data default --out runs/ddp
--data takes corpus names (wiki, sotu, pydoc, default), text/json/parquet files or directories, or one directory
saved with datasets' save_to_disk (ready input_ids blocks). Unfreeze schedules: never, step:N,
lit:threshold=T,patience=P[,window=W]. See docs/training.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every ``TrainConfig`` field as a flag (help, default and range from the dataclass), with the data flags
    from ``DataConfig``."""
    from ..data.config import DataConfig
    from ..train.config import GROUPS, WHAT, TrainConfig
    from .flags import add_flags

    groups = {name: p.add_argument_group(name) for name in GROUPS}
    add_flags(p, DataConfig, only=DATA_FLAGS, group=WHAT, groups=groups,
              overrides={"sources": {"flag": "--data", "metavar": "SOURCE"}})
    add_flags(p, TrainConfig, groups=groups)
    p.add_argument("--no-progress", action="store_true", help="no progress bar and summary")


DATA_FLAGS = ("sources", "block_size", "max_documents")


def saved_dataset(sources: list[str]):
    """The dataset saved with ``save_to_disk`` at ``sources[0]``, or None when the sources are not one."""
    if len(sources) != 1:
        return None
    p = Path(sources[0])
    if not ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file()):
        return None
    from datasets import load_from_disk

    return load_from_disk(str(p))


def config_from_args(args: argparse.Namespace):
    """(TrainConfig, ready dataset or None) from the parsed flags."""
    from ..data.config import DataConfig
    from ..train.config import TrainConfig
    from .flags import flag_values

    dataset = saved_dataset(args.sources)
    data = None if dataset is not None else DataConfig(**flag_values(args, DataConfig, only=DATA_FLAGS))
    return TrainConfig(**flag_values(args, TrainConfig), data=data), dataset


def run(args: argparse.Namespace) -> int:
    import logging

    from ..train import train

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg, dataset = config_from_args(args)
    train(cfg, dataset, progress=not args.no_progress)
    return 0

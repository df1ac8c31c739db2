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


def _bool_or_auto(text: str):
    t = text.lower()
    if t in ("auto",):
        return "auto"
    if t in ("on", "true", "yes", "1"):
        return True
    if t in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected auto, on or off; got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to train")
    g.add_argument("--model", required=True, help="student directory (from xatl convert) or HF causal-LM directory")
    g.add_argument("--data", nargs="+", default=["default"], metavar="SOURCE",
                   help="corpus names, files/directories, or a save_to_disk directory of input_ids blocks "
                        "(default: default = wiki + sotu + pydoc)")
    g.add_argument("--out", required=True, help="run directory (metrics, checkpoints, final model)")
    g.add_argument("--block-size", type=int, default=512, help="tokens per training block (default 512)")
    g.add_argument("--max-documents", type=int, default=None, help="use only the first N documents per source")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=1000, help="LM training steps (default 1000)")
    g.add_argument("--batch-size", type=int, default=8, help="blocks per micro-batch per process (default 8)")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step per process (default 1)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of fresh weights (default 1e-3)")
    g.add_argument("--min-lr", type=float, default=0.1, help="final LR as a fraction of the peak (default 0.1)")
    g.add_argument("--warmup-steps", type=int, default=None, help="LR warm-up (default min(100, steps/10))")
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm (0: off)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--bf16", type=_bool_or_auto, default="auto", help="bf16 autocast: auto (CUDA with bf16), on, off")
    g = p.add_argument_group("freezing (the paper's recipe)")
    g.add_argument("--freeze", choices=["copied", "none"], default="copied",
                   help="copied: weights copied from the donor start frozen (default); none: train everything")
    g.add_argument("--unfreeze", default="lit:threshold=0.01,patience=1",
                   help="never | step:N | lit:threshold=T,patience=P[,window=W] (the paper's rule) | lit-consecutive:... "
                   "(xatl's earlier variant) (default lit:threshold=0.01,patience=1)")
    g.add_argument("--unfreeze-lr", type=float, default=None, help="peak LR of the copied weights (default: --lr, "
                   "as the paper; lr/10 with lit-consecutive)")
    g.add_argument("--unfreeze-warmup-steps", type=int, default=None, help="their ramp up to the main schedule "
                   "(default: the paper's 2k of 145k steps, max-steps/72.5; the LM warm-up with lit-consecutive)")
    g = p.add_argument_group("beyond the paper")
    g.add_argument("--donor", default=None, help="donor model for --align-steps/--kd-weight (default: the one "
                   "recorded in the transfer report)")
    g.add_argument("--align-steps", type=int, default=0, help="attention-alignment steps before LM training")
    g.add_argument("--align-lr", type=float, default=1e-3)
    g.add_argument("--kd-weight", type=float, default=0.0, help="weight of distillation from the donor's logits")
    g.add_argument("--kd-temperature", type=float, default=2.0)
    g.add_argument("--lora-rank", type=int, default=0, help="LoRA on the copied weights instead of unfreezing them")
    g.add_argument("--lora-alpha", type=float, default=None)
    g = p.add_argument_group("outputs")
    g.add_argument("--eval-every", type=int, default=100)
    g.add_argument("--eval-batches", type=int, default=20)
    g.add_argument("--save-every", type=int, default=500)
    g.add_argument("--keep-last", type=int, default=3)
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events")
    g.add_argument("--no-progress", action="store_true", help="no progress bar and summary")
    r = g.add_mutually_exclusive_group()
    r.add_argument("--resume", dest="resume", action="store_const", const=True, default="auto",
                   help="resume from the latest checkpoint in --out (default: when there is one)")
    r.add_argument("--no-resume", dest="resume", action="store_const", const=False,
                   help="start fresh (refused if --out holds a run, unless --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="with --no-resume: replace the run in --out")


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
    from ..data import DataConfig
    from ..train import AlignConfig, KDConfig, LoRAConfig, TrainConfig

    dataset = saved_dataset(args.data)
    data = None if dataset is not None else DataConfig(sources=args.data, block_size=args.block_size,
                                                       max_documents=args.max_documents)
    cfg = TrainConfig(
        model=args.model, out_dir=args.out, data=data, donor=args.donor, max_steps=args.steps,
        micro_batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr, min_lr=args.min_lr,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, clip=args.clip, freeze=args.freeze,
        unfreeze=args.unfreeze, unfreeze_lr=args.unfreeze_lr, unfreeze_warmup_steps=args.unfreeze_warmup_steps,
        align=AlignConfig(steps=args.align_steps, lr=args.align_lr),
        kd=KDConfig(weight=args.kd_weight, temperature=args.kd_temperature),
        lora=LoRAConfig(rank=args.lora_rank, alpha=args.lora_alpha),
        eval_every=args.eval_every, eval_batches=args.eval_batches, save_every=args.save_every,
        keep_last=args.keep_last, log_every=args.log_every, tensorboard=not args.no_tensorboard, bf16=args.bf16,
        seed=args.seed, resume=args.resume, overwrite=args.overwrite)
    return cfg, dataset


def run(args: argparse.Namespace) -> int:
    import logging

    from ..train import train

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg, dataset = config_from_args(args)
    train(cfg, dataset, progress=not args.no_progress)
    return 0

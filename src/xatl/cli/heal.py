"""``xatl heal``: convert a donor and heal the student within a budget (flags generated from ``HealConfig``)."""

from __future__ import annotations

import argparse

from .convert import _layers, parse_option

HELP = "convert a donor into an LCI student and heal it: attention transfer, then distillation + LoRA, in a budget"
DESCRIPTION = """Turn a pretrained Transformer into a linear-cost student that still works, in one command.

Stage 1 (attention transfer): every LCI layer's mixer learns to reproduce the donor's attention output on the
donor's own hidden states, all layers at once from one donor forward pass; only the new mixer parameters train
(no backward pass through the MLPs or across layers). Stage 2 (end to end): distillation from the donor's logits
plus the LM loss, with LoRA adapters on the copied weights. --budget covers both (wall-clock budgets are turned
into steps by a short measurement first, so the run can resume exactly). Every curve starts at step 0.
The healed model is OUT/train/final (loads with from_pretrained; `xatl generate --model OUT/train/final`)."""
EPILOG = """examples:
  xatl heal --donor smollm2-135m --out runs/heal-lolcats --budget 15m
  xatl heal --donor smollm2-135m --out runs/heal-hybrid --attention-layers 0,10,20,29 --budget 15m
  xatl heal --donor smollm2-135m --out runs/h --mixer lolcats --mixer-option window=128 --budget 400steps
  xatl heal --donor ./my-llama --out runs/h --budget 2Mtok --stage2 unfreeze
On a 2-core CPU, SmolLM2-135M heals at about 100 tokens/s in stage 1 and 40 in stage 2: 15 minutes is about
45k + 18k tokens. See docs/heal.md."""


def _layers_or_auto(text: str):
    """``0,10,20`` -> [0, 10, 20]; ``auto:4`` stays a string (HealConfig checks it)."""
    return text if text.strip().startswith("auto") else _layers(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every ``HealConfig`` field as a flag (help, default and range from the dataclass)."""
    from ..heal.config import HealConfig
    from .flags import add_flags

    add_flags(p, HealConfig, overrides={
        "attention_layers": dict(type=_layers_or_auto, metavar="I,J|auto:K"),
        "mixer_options": dict(flag="--mixer-option", type=parse_option, action="append", default=[],
                              metavar="KEY=VALUE"),
        "data": dict(nargs="+", metavar="SOURCE")})
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    from ..heal.config import HealConfig
    from .flags import flag_values

    values = flag_values(args, HealConfig)
    values["mixer_options"] = dict(values["mixer_options"] or [])
    return HealConfig(**values)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..heal import heal

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    heal(config_from_args(args), progress=not args.no_progress)
    return 0

"""``xatl convert``: donor -> XATL student directory (weights, config, tokenizer, transfer_report.json)."""

from __future__ import annotations

import argparse
import json

HELP = "convert a pretrained Transformer donor into an LCI student (XATL weight transfer)"
DESCRIPTION = """Build an LCI student with the donor's skeleton and copy every shared weight into it.

The student keeps the donor's embeddings, norms, MLPs and LM head; only the token mixer of each layer
changes (--mixer), except the layers listed in --attention-layers, which keep softmax attention with all
their donor weights (a hybrid). The transfer report (transfer_report.json beside the weights) lists where
every donor tensor went and where every student tensor came from."""
EPILOG = """examples:
  xatl convert --donor smollm2-135m --mixer retention --out students/smol-retention
  xatl convert --donor EleutherAI/pythia-410m --mixer retention --attention-layers 1,11 --out students/hybrid
  xatl convert --donor ./model.gguf --mixer linear --copy default,qkv --mixer-option chunk_size=32 --out s/lin
  xatl convert --donor ./llama-3-70b-config-only --mixer gla --plan      # fates and memory, no weights read
components for --copy: embed, norms, mlp, lm_head, o_proj, qkv; or all, default (all but qkv), none."""


def _layers(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices like 1,11; got {text!r}") from None


def parse_option(text: str) -> tuple[str, object]:
    """KEY=VALUE -> (KEY, VALUE as JSON, or the text when it is not JSON): a --mixer-option flag."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--donor", required=True, help="HF model directory, .gguf file, fetched asset name "
                   "(e.g. smollm2-135m) or hub id")
    from ..mixers.registry import MIXERS

    p.add_argument("--mixer", default="retention", help="token mixer of the student's layers (default: retention; "
                   f"one of: {', '.join(MIXERS)})")
    p.add_argument("--attention-layers", type=_layers, default=[], metavar="I,J",
                   help="layers that keep softmax attention (hybrid), e.g. 1,11; negative indices count from the end")
    p.add_argument("--copy", default="default", help="components to copy from the donor (default: default = "
                   "embed,norms,mlp,lm_head,o_proj)")
    p.add_argument("--mixer-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the mixer (repeatable), e.g. chunk_size=32 or feature_map=\"relu\"")
    p.add_argument("--out", help="output directory (must not hold a model unless --overwrite)")
    p.add_argument("--plan", action="store_true", help="print what the conversion would copy and initialise and "
                   "the memory it needs, from the donor's config alone (no weights are read; nothing is written)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model in --out")
    p.add_argument("--seed", type=int, default=0, help="seed of the freshly initialised weights (default 0)")


def run(args: argparse.Namespace) -> int:
    if args.plan:
        return plan(args)
    if not args.out:
        from ..errors import ConfigError

        raise ConfigError("--out is required: the directory to write the student to (or --plan to only plan)")
    from ..transfer.convert import convert

    result = convert(args.donor, args.out, mixer=args.mixer, attention_layers=args.attention_layers,
                     copy=args.copy, mixer_options=dict(args.mixer_option), overwrite=args.overwrite,
                     seed=args.seed)
    s = result.report.summary()
    t = result.seconds
    print(f"saved {result.path} ({s['student_parameters'] / 1e6:.1f}M parameters, "
          f"{s['copied_fraction']:.1%} copied from the donor)")
    print(f"donor tensors: {s['donor_status']}; student tensors: {s['student_status']}")
    print(f"time: load {t['load']:.1f}s, transfer {t['transfer']:.1f}s, save {t['save']:.1f}s")
    return 0


def plan(args: argparse.Namespace) -> int:
    """``--plan``: the transfer plan at the dtype ``xatl convert`` loads donors in (fp32)."""
    import torch

    from ..donors.load import load_donor_config
    from ..transfer.plan import plan_transfer

    config = load_donor_config(args.donor)
    print(plan_transfer(config, mixer=args.mixer, attention_layers=args.attention_layers, copy=args.copy,
                        mixer_options=dict(args.mixer_option), dtype=torch.float32))
    return 0

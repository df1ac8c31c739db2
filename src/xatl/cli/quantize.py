"""``xatl quantize``: a student with int8 or bf16 weights, for faster decoding on CPU."""

from __future__ import annotations

import argparse

HELP = "write a copy of a student with int8 or bf16 weights (faster CPU decoding; loads with from_pretrained)"
DESCRIPTION = """Quantise a saved student and write it, with its tokenizer, to --out.

int8: every linear layer (mixer projections, gates, MLP, LM head) keeps int8 weights with one scale per output
channel and quantises its input per call to 8 bits (fbgemm on CPU); each input channel is first smoothed by the
largest activation seen on a few training blocks (SmoothQuant), which keeps real LMs' activation outliers from
crushing the resolution. Embeddings, norms, convolutions, decays and recurrent states keep their precision.
bf16: every floating-point weight in bfloat16 (load it with --dtype bfloat16); states stay in fp32.
The quality cost and the speed are measured in docs/benchmarks.md (python benchmarks/decode_speed.py)."""
EPILOG = """examples:
  xatl quantize --model students/smol-ret --to int8 --out students/smol-ret-int8
  xatl quantize --model runs/heal/train/final --to bf16 --out students/healed-bf16
  xatl generate --model students/smol-ret-int8 --prompt "The capital of France is\""""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..inference.config import QuantizeConfig
    from .flags import add_flags

    p.add_argument("--model", required=True, help="student directory (as written by xatl convert, heal or train)")
    p.add_argument("--out", required=True, help="output directory, outside --model (must not hold a model unless --overwrite)")
    add_flags(p, QuantizeConfig)
    p.add_argument("--overwrite", action="store_true", help="replace an existing model in --out")


def run(args: argparse.Namespace) -> int:
    from ..inference.config import QuantizeConfig
    from ..inference.quantize import save_quantized
    from .flags import flag_values

    cfg = QuantizeConfig(**flag_values(args, QuantizeConfig))
    r = save_quantized(args.model, args.out, cfg, overwrite=args.overwrite)
    print(f"saved {r.path}: {r.linear_layers} linear layers to {r.to}, weights {r.bytes_before / 2**20:.1f} MiB -> "
          f"{r.bytes_after / 2**20:.1f} MiB, in {r.seconds:.1f} s")
    return 0

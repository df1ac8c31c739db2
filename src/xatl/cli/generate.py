"""``xatl generate``: continue a prompt with a student (or any causal LM), streaming the text to the terminal."""

from __future__ import annotations

import argparse
import sys

from .types import PACK_HELP, read_stdin, utf8_text

HELP = "generate text from a prompt, streaming it to the terminal (constant memory for LCI students)"
DESCRIPTION = """Continue --prompt with the model and stream the new text to stdout as it is decoded.

A student prefills the prompt once in its chunked form, then decodes one recurrent step per token: the memory of
its cache does not grow with the output (softmax layers of a hybrid keep a KV cache). A summary line (tokens,
speed, cache memory) goes to stderr. Greedy by default; --temperature > 0 samples."""
EPILOG = """examples:
  xatl generate --model students/smol-ret --prompt "The capital of France is"
  xatl generate --model students/smol-ret --prompt "Once upon a time" --temperature 0.8 --top-p 0.95 --seed 1
  xatl generate --model students/smol-ret --prompt "Q: 2+2=" --num-beams 4 --max-new-tokens 8
  echo "Some text" | xatl generate --model students/smol-ret --stop "."      # prompt from stdin"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..generation.settings import DecodingSettings

    p.add_argument("--model", required=True, help="model directory (student or donor), .gguf file or asset name")
    p.add_argument("--prompt", default=None, help="text to continue (default: read stdin)")
    DecodingSettings.add_arguments(p)
    p.add_argument("--device", default="auto", help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--pack", action="store_true", help=PACK_HELP)
    p.add_argument("--quiet", action="store_true",
                   help="nothing on stderr but errors (no loading bar, no summary line)")


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import GenerationError
    from ..eval.loading import load_model
    from ..generation.settings import DecodingSettings
    from ..generation.text import generate_text

    settings = DecodingSettings.from_args(args)
    prompt = utf8_text(args.prompt, "--prompt") if args.prompt is not None else read_stdin()
    if not prompt:
        raise GenerationError("the prompt is empty; pass some text with --prompt (or on stdin)")
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    model, tokenizer = load_model(args.model, device=args.device, dtype=getattr(torch, args.dtype), pack=args.pack)
    result = generate_text(model, tokenizer, prompt, settings, out=sys.stdout, echo_prompt=True)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if not args.quiet:
        memory = f", cache {result.cache_bytes / 2**20:.2f} MiB" if result.cache_bytes is not None else ""
        print(f"[{result.prompt_tokens} prompt + {result.new_tokens} new tokens in {result.seconds:.2f} s, "
              f"{result.tokens_per_s:.1f} tokens/s{memory}]", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Inference only: gradients are off for the command, and back on after it (the CLI may run in-process)."""
    import torch

    with torch.no_grad():
        return _run(args)

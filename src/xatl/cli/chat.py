"""``xatl chat``: an interactive conversation with a model, streamed, keeping the cache between turns."""

from __future__ import annotations

import argparse
import sys

from .types import not_utf8, utf8_text

HELP = "chat with a model interactively (its chat template if it has one, else a User:/Assistant: transcript)"
DESCRIPTION = """Talk to the model turn by turn; answers are streamed as they are decoded.

The tokenizer's chat template formats the conversation when it has one; otherwise a plain "User: ... /
Assistant: ..." transcript is used (an answer ends at the model's end-of-text or at a new "User:" line). The cache
is kept between turns, so earlier turns are never run again: for an LCI student the memory stays constant however
long the conversation grows. Commands: /reset starts over, /quit (or end of input) leaves."""
EPILOG = """examples:
  xatl chat --model students/smol-ret
  xatl chat --model students/smol-ret --system "You are a helpful assistant." --temperature 0.7 --seed 0"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..generation.settings import DecodingSettings

    p.add_argument("--model", required=True, help="model directory (student or donor), .gguf file or asset name")
    p.add_argument("--system", default=None, help="system message that opens the conversation")
    DecodingSettings.add_arguments(p, beams=False)
    p.add_argument("--device", default="auto", help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import GenerationError
    from ..eval.loading import load_model
    from ..generation.chat import ChatSession
    from ..generation.settings import DecodingSettings

    if sys.stdin is None or sys.stdin.closed:
        raise GenerationError("stdin is closed, and xatl chat reads your messages from it; run it in a terminal "
                              "or pipe the messages in (printf 'Hi\\n' | xatl chat --model ...)")
    settings = DecodingSettings.from_args(args)
    system = utf8_text(args.system, "--system") if args.system is not None else None
    model, tokenizer = load_model(args.model, device=args.device, dtype=getattr(torch, args.dtype))
    session = ChatSession(model, tokenizer, settings, system=system)
    fmt = "chat template" if session.uses_template else "plain User:/Assistant: format"
    print(f"[chatting with {args.model} ({fmt}); /reset starts over, /quit leaves]", file=sys.stderr)
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        except UnicodeDecodeError as e:     # stdin decodes strictly (a UTF-8 locale): e.start counts from a chunk
            raise not_utf8("a message on stdin", e.object[e.start:e.start + 1]) from None
        text = utf8_text(line, "a message on stdin").strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            session.reset()
            print("[conversation reset]", file=sys.stderr)
            continue
        sys.stdout.write("assistant> " if interactive else "")
        try:
            session.reply(text, out=sys.stdout)
        except GenerationError as e:            # e.g. the conversation outgrew the context: say so, keep chatting
            print(f"\n[error: {e}]", file=sys.stderr)
            continue
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


def run(args: argparse.Namespace) -> int:
    """Inference only: gradients are off for the command, and back on after it (the CLI may run in-process)."""
    import torch

    with torch.no_grad():
        return _run(args)

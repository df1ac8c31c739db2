"""Argparse ``type=`` helpers shared by the subcommands (plain Python: no torch, so ``xatl --help`` stays fast)."""

from __future__ import annotations

import argparse

PACK_HELP = ("reorder the linear layers' fp32/bf16 weights into oneDNN's blocked layout first (CPU only; faster "
             "decoding, logits move by ~1e-5 of their scale)")
"""Help of ``--pack`` (``xatl generate``, ``xatl profile``)."""


def positive_int(text: str) -> int:
    """An integer >= 1, else an argparse error naming the bad text."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def bool_or_auto(text: str):
    """``auto`` | on/true/yes/1 | off/false/no/0, as ``"auto"``, True or False."""
    t = text.lower()
    if t == "auto":
        return "auto"
    if t in ("on", "true", "yes", "1"):
        return True
    if t in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected auto, on or off; got {text!r}")


def optional(kind):
    """A parser of ``kind`` that reads ``none`` (or ``auto``, or nothing) as None."""
    def parse(text: str):
        if text.lower() in ("none", "auto", ""):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or none, got {text!r}") from None
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse

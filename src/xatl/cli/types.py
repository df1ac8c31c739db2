"""Argparse ``type=`` helpers and text-input checks shared by the subcommands (plain Python: no torch, so
``xatl --help`` stays fast)."""

from __future__ import annotations

import argparse
import sys

from ..errors import GenerationError

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


def not_utf8(what: str, byte: bytes, offset: int | None = None) -> GenerationError:
    """The refusal of text that is not UTF-8: ``what``, its first bad byte and where (when known), and the fix."""
    where = f"byte {offset}: " if offset is not None else "byte "
    return GenerationError(f"{what} is not UTF-8 text ({where}{byte!r}); pass UTF-8 text (convert it with "
                           "iconv -t UTF-8)")


def utf8_text(text: str, what: str) -> str:
    """``text`` if it is Unicode text, else GenerationError naming its first bad byte. Python hands the bytes of
    argv, and of stdin under the C locale or UTF-8 mode, that are not UTF-8 over as lone surrogates
    (``surrogateescape``), which tokenizers reject with a TypeError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        offset = len(text[:e.start].encode("utf-8"))
        try:
            byte = text[e.start].encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:       # a lone surrogate that stands for no byte
            byte = text[e.start].encode("utf-8", "surrogatepass")
        raise not_utf8(what, byte, offset) from None
    return text


def read_stdin(what: str = "the prompt on stdin") -> str:
    """All of stdin as UTF-8 text (its bytes, decoded strictly: whatever the locale's error handler), else
    GenerationError naming the first bad byte."""
    if sys.stdin is None or sys.stdin.closed:
        raise GenerationError(f"stdin is closed, so {what} cannot be read; pass the text as an argument (--prompt)")
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:                      # a text-only stream (tests, embedding)
        return utf8_text(sys.stdin.read(), what)
    data = raw.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise not_utf8(what, data[e.start:e.start + 1], e.start) from None

"""Streaming decoded text to a terminal (or any text file) while ``generate()`` runs.

`TextStreamer` prints words as soon as they are complete; `StreamPrinter` adds what an interactive program needs:
it writes to any file object, hides stop strings (text that could still turn into one is held back until it
cannot), and records what it showed.
"""

from __future__ import annotations

import sys
from typing import TextIO

from transformers import TextStreamer


def cut_at_stop(text: str, stop: list[str] | tuple[str, ...]) -> tuple[str, bool]:
    """(text before the first stop string, whether one was found)."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def _held_back(text: str, stop) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string (it may become one)."""
    best = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


class StreamPrinter(TextStreamer):
    """A `TextStreamer` writing to ``out`` (default stdout) that never shows a stop string or what follows it.

    ``prefix`` (e.g. the prompt) is written when the first generated tokens arrive, i.e. only once generate() has
    accepted the request. ``text``: the generated text written so far. Batch size 1 only (as `TextStreamer`).
    """

    def __init__(self, tokenizer, out: TextIO | None = None, stop: list[str] | tuple[str, ...] = (),
                 skip_prompt: bool = True, prefix: str = "", **decode_kwargs):
        decode_kwargs.setdefault("skip_special_tokens", True)
        super().__init__(tokenizer, skip_prompt=skip_prompt, **decode_kwargs)
        self.out = out if out is not None else sys.stdout
        self.stop = tuple(stop)
        self.prefix = prefix
        self.text = ""
        self._pending = ""
        self._stopped = False

    def put(self, value) -> None:
        if self.prefix and not (self.skip_prompt and self.next_tokens_are_prompt):
            self.out.write(self.prefix)
            self.out.flush()
            self.prefix = ""
        super().put(value)

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.text += text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if self._stopped:
            return
        self._pending += text
        shown, hit = cut_at_stop(self._pending, self.stop)
        if hit:
            self._stopped = True
            self._write(shown)
            self._pending = ""
            return
        keep = 0 if stream_end else _held_back(self._pending, self.stop)
        self._write(self._pending[:len(self._pending) - keep])
        self._pending = self._pending[len(self._pending) - keep:]

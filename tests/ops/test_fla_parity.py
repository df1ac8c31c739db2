"""flash-linear-attention's kernels against xatl's PyTorch chunked forms, on outputs, final states and gradients
(q, k, v, gates, beta and the initial state), run on CPU under Triton's interpreter at tiny shapes
(``fla_interpreter``; fla-core 0.6.0, triton 3.7.1, the ``fla-interpreter`` extra that ``make test`` installs).

What this pins down: xatl's calls into fla (the (B, H, T, .) <-> (B, T, H, .) transposes, scale 1, the gate
conventions, the (B, H, K, V) state asked for explicitly), the routing from the ops and the mixers
(``kernels="fla"``) to those calls, and that fla's math is the recurrence xatl's forms compute. Speed is not
measured here (``make bench-gpu`` on a GPU). Tolerance: 2e-4 of the largest value, fp32 (the kernels run fp32
dots; the difference is summation order across 64-token chunks).
"""

from __future__ import annotations

import functools

import pytest
import torch
from fla_interpreter import interpreted_fla

import xatl
from tiny import VOCAB, tiny_donor
from xatl.ops import fla_backend, parity

B, H, K, V, T = 2, 2, 16, 16, 70        # T crosses fla's 64-token chunk and is not a multiple of it
SHAPE = dict(B=B, H=H, T=T, K=K, V=V)
TOL = 2e-4


@pytest.fixture(scope="module", autouse=True)
def interpreter():
    with interpreted_fla():
        yield


def _counted(fn, calls: list):
    @functools.wraps(fn)                     # keeps the signature: layout_args reads it
    def counted(*args, **kwargs):
        calls.append(fn.__name__)
        return fn(*args, **kwargs)
    return counted


def _close(a, b, what):
    err = parity.relative_error(a, b)
    assert err <= TOL, f"{what}: {err:.2e}"


@pytest.mark.parametrize("kind", list(parity.OPS))
def test_fla_through_the_op_matches_the_torch_form(kind):
    """The op with use_fla=True (fla's kernel) against the same op's PyTorch chunked form: forward, final state and
    every gradient, from a non-zero initial state (``xatl.ops.parity``)."""
    errors = parity.compare(kind, **SHAPE)
    finals = ["final state", "final k sum"] if kind == "linear" else ["final state"]
    assert list(errors) == ["output", *finals] + [f"d {n}" for n in parity.grad_names(kind)]
    bad = {k: e for k, e in errors.items() if e is not None and e > TOL}
    assert not bad, bad
    assert all(e is not None for e in errors.values())               # every input is differentiated by both


@pytest.mark.parametrize("kind", list(parity.OPS))
def test_half_precision_inputs_with_float32_gates(kind):
    """q, k, v in fp16 (as under autocast) with fp32 gates and beta: fla against the PyTorch form on the same
    values in fp32, to 2e-3 (fp16 rounding of the outputs and gradients). bf16 cannot be checked here: the
    interpreter's bf16 dots are wrong (``fla_interpreter``); make bench-gpu checks it on a GPU."""
    errors = parity.compare(kind, dtype=torch.float16, **SHAPE)
    bad = {k: e for k, e in errors.items() if e is None or e > 2e-3}
    assert not bad, bad


def test_the_fla_state_is_float32_and_ours():
    xs, s0 = parity.inputs("gla", **SHAPE)
    (_, state), _ = parity.run("gla", xs, s0, use_fla=True)
    assert state.shape == (B, H, K, V) and state.dtype == torch.float32


def test_the_layout_is_asked_for_explicitly():
    """Every kernel gets the layout arguments it takes, set to ours; older names and head_first too."""
    kernels = [*fla_backend._kernels().values(), *fla_backend._delta_kernels().values()]
    assert all(fla_backend.layout_args(fn) == {"state_v_first": False} for fn in kernels)     # fla-core 0.6.0

    def older(q, k, v, g, scale=None, initial_state=None, output_final_state=False, head_first=True,
              transpose_state_layout=None):
        raise AssertionError("not called")

    assert fla_backend.layout_args(older) == {"transpose_state_layout": False, "head_first": False}


def test_a_state_in_another_layout_is_refused(monkeypatch):
    """A kernel whose final state comes back (B, H, V, K) is refused in one line, not silently transposed."""
    real = fla_backend._kernels()["gla"]

    def other_layout(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
        o, s = real(q, k, v, g, scale=scale, initial_state=initial_state, output_final_state=output_final_state)
        return o, s.transpose(-1, -2)

    monkeypatch.setitem(fla_backend._KERNELS, "gla", other_layout)
    (q, k, v, g), (s0,) = parity.inputs("gla", **SHAPE)
    with pytest.raises(xatl.errors.ConfigError, match="lays states out differently") as e:
        fla_backend.fla_chunk_gla(q, k, v[..., :8], g, s0[..., :8], output_final_state=True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mixer", ["gla", "retention", "mamba2", "linear", "deltanet", "gated_deltanet"])
def test_a_student_with_kernels_fla_matches_kernels_torch(mixer, monkeypatch):
    """A whole tiny student (one layer: the interpreter is slow) with kernels="fla" against kernels="torch": logits
    and every parameter's gradient; fla's kernels must have run."""
    calls = []
    for table in (fla_backend._kernels(), fla_backend._delta_kernels()):
        for name, fn in list(table.items()):
            monkeypatch.setitem(table, name, _counted(fn, calls))
    donor = tiny_donor("llama", num_hidden_layers=1)
    ids = torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(1))
    runs = []
    for kernels in ("fla", "torch"):
        calls.clear()
        torch.manual_seed(0)
        cfg = xatl.student_config(donor.config, mixer=mixer, mixer_options={"kernels": kernels})
        model = xatl.XATLForCausalLM(cfg)
        logits = model(ids).logits
        logits.float().logsumexp(-1).mean().backward()
        runs.append((logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
        assert len(calls) == (donor.config.num_hidden_layers if kernels == "fla" else 0), calls
    (l_f, g_f), (l_t, g_t) = runs
    _close(l_f, l_t, "logits")
    assert g_f.keys() == g_t.keys() and g_f
    for n in g_t:
        _close(g_f[n], g_t[n], f"d {n}")

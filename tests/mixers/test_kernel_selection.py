"""kernels="torch" | "fla" | "auto": which chunked-form kernels a mixer runs, and the one-line refusals where fla's
cannot (no CUDA here, so "auto" must run the torch forms and "fla" must refuse)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import xatl
from tiny import VOCAB, tiny_donor
from xatl.errors import ConfigError
from xatl.mixers.registry import MIXERS

FLA_MIXERS = [m for m, cls in MIXERS.items() if cls.fla_path is not None]
NO_FLA = [m for m, cls in MIXERS.items() if cls.recurrent and cls.fla_path is None]


@pytest.fixture(scope="module")
def donor():
    return tiny_donor("llama")


def student(donor, mixer, kernels):
    torch.manual_seed(0)
    cfg = xatl.student_config(donor.config, mixer=mixer, mixer_options={"kernels": kernels, "chunk_size": 4})
    return xatl.XATLForCausalLM(cfg).eval()


def test_the_mixers_with_an_fla_path():
    assert set(FLA_MIXERS) == {"gla", "mamba2", "retention", "linear", "deltanet", "gated_deltanet"}


@pytest.mark.parametrize("mixer", FLA_MIXERS)
def test_auto_on_cpu_runs_the_torch_forms(donor, mixer):
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(student(donor, mixer, "auto")(ids).logits, student(donor, mixer, "torch")(ids).logits)


@pytest.mark.parametrize("mixer", FLA_MIXERS)
def test_fla_on_cpu_inputs_is_refused_in_one_line(donor, mixer):
    s = student(donor, mixer, "fla")                           # building is fine: the model may move to a GPU
    with pytest.raises(ConfigError, match="need CUDA inputs") as e, torch.no_grad():
        s(torch.ones(1, 5, dtype=torch.long))
    assert "\n" not in str(e.value) and "kernels='auto' or 'torch'" in str(e.value)


@pytest.mark.parametrize("mixer", ["gla", "deltanet"])
def test_fla_on_cuda_without_the_package(donor, mixer, monkeypatch):
    """A CUDA input (faked: the check reads only ``is_cuda``) where flash-linear-attention does not import
    (simulated: the test environment has it, for the parity tests): "fla" names the package to install, "auto"
    falls back to torch."""
    from xatl.ops import fla_backend

    monkeypatch.setattr(fla_backend, "_KERNELS", {})
    monkeypatch.setattr(fla_backend, "_DELTA_KERNELS", {})
    cuda_like = SimpleNamespace(is_cuda=True, device=torch.device("cpu"))
    layer = student(donor, mixer, "fla").model.layers[0].mixer
    with pytest.raises(ConfigError, match="pip install flash-linear-attention"):
        layer._use_fla(cuda_like)
    assert student(donor, mixer, "auto").model.layers[0].mixer._use_fla(cuda_like) is False


@pytest.mark.parametrize("mixer", NO_FLA)
def test_fla_for_a_mixer_without_an_fla_path_is_refused_when_built(donor, mixer):
    with pytest.raises(ConfigError, match=f"mixer {mixer!r} has no flash-linear-attention path"):
        student(donor, mixer, "fla")
    student(donor, mixer, "auto")                              # auto: nothing to pick, torch

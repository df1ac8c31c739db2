"""The private ``transformers.GenerationMixin`` hooks `XATLGenerationMixin` overrides, one test each: the hook
still exists on ``GenerationMixin``, takes the parameters our override takes and forwards (in that order: both
transformers and our ``super()`` calls pass them positionally), resolves to our override on the student class,
and is reached by a tiny ``generate()``. A transformers upgrade that renames, re-signs or stops calling one of
them fails here, naming the hook."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import GenerationMixin

import xatl
from tiny import VOCAB, tiny_donor
from xatl.models.generation import XATLGenerationMixin


@pytest.fixture(scope="module")
def hybrid():
    """A tiny retention student keeping softmax attention at layer 1 (context 16), random weights, eval mode."""
    donor = tiny_donor("llama", max_position_embeddings=16, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    cfg = xatl.student_config(donor.config, mixer="retention", attention_layers=[1])
    torch.manual_seed(0)
    student, _ = xatl.transfer(donor, cfg)
    return student.eval()


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _spy(monkeypatch, cls, name) -> list:
    """Replace ``cls.name`` by a wrapper that records each call's arguments and calls the original."""
    original = cls.__dict__[name]
    calls = []

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, spy)
    return calls


def _check_hook(hybrid, name: str, params: list[str]) -> None:
    """``GenerationMixin.<name>`` exists with ``params`` (after self), and the student resolves it to ours."""
    assert hasattr(GenerationMixin, name), f"transformers.GenerationMixin no longer has the hook {name}"
    theirs = _params(getattr(GenerationMixin, name))[1:]
    assert theirs[:len(params)] == params, f"GenerationMixin.{name} now takes {theirs}; our override takes {params}"
    assert _params(XATLGenerationMixin.__dict__[name])[1:len(params) + 1] == params
    assert getattr(type(hybrid), name) is XATLGenerationMixin.__dict__[name], \
        f"{type(hybrid).__name__}.{name} no longer resolves to XATLGenerationMixin's override"


def _generate(model, n_prompt: int = 4, **kwargs) -> torch.Tensor:
    ids = torch.arange(1, n_prompt + 1).remainder(VOCAB).view(1, -1)
    return model.generate(ids, max_new_tokens=2, do_sample=False, **kwargs)


def _generate_through(monkeypatch, model, name: str, **kwargs):
    """A tiny generate() that must reach our ``name`` once and transformers' once (ours forwards to it)."""
    ours, upstream = _spy(monkeypatch, XATLGenerationMixin, name), _spy(monkeypatch, GenerationMixin, name)
    out = _generate(model, **kwargs)
    assert len(ours) == 1 and len(upstream) == 1, f"{name}: override reached {len(ours)}x, transformers' " \
        f"{len(upstream)}x"
    return out


def test_hook_generate(hybrid, monkeypatch):
    """generate(inputs, generation_config, **kwargs) is forwarded to GenerationMixin.generate."""
    name = "generate"
    theirs = _params(GenerationMixin.generate)[1:3]
    assert theirs == ["inputs", "generation_config"], f"GenerationMixin.{name} now starts with {theirs}"
    assert type(hybrid).generate is XATLGenerationMixin.__dict__[name]
    assert _generate_through(monkeypatch, hybrid, name).shape == (1, 6)


def test_hook_supports_default_dynamic_cache(hybrid):
    """A classmethod without arguments. transformers (5.x) consults it only inside its own
    _prepare_cache_for_generation, which XATLGenerationMixin replaces, so generate() does not reach it: checked
    is that it is still that hook (a classmethod, consulted there) and that ours refuses a DynamicCache."""
    name = "_supports_default_dynamic_cache"
    assert hasattr(GenerationMixin, name), f"transformers.GenerationMixin no longer has the hook {name}"
    assert isinstance(inspect.getattr_static(GenerationMixin, name), classmethod), f"{name} is no classmethod"
    assert _params(getattr(GenerationMixin, name)) == [], f"GenerationMixin.{name} now takes arguments"
    assert name in inspect.getsource(GenerationMixin._prepare_cache_for_generation), \
        f"GenerationMixin._prepare_cache_for_generation no longer consults {name}"
    assert inspect.getattr_static(type(hybrid), name) is XATLGenerationMixin.__dict__[name]
    assert type(hybrid)._supports_default_dynamic_cache() is False


def test_hook_prepare_cache_for_generation(hybrid, monkeypatch):
    """Puts an XATLCache in model_kwargs["cache"] (transformers then decodes with it)."""
    name = "_prepare_cache_for_generation"
    _check_hook(hybrid, name, ["generation_config", "model_kwargs", "generation_mode", "batch_size",
                               "max_cache_length"])
    calls = _spy(monkeypatch, XATLGenerationMixin, name)
    out = _generate(hybrid, return_dict_in_generate=True)
    assert len(calls) == 1, f"generate() did not reach our {name}"
    assert isinstance(calls[0][0][1]["cache"], xatl.XATLCache)
    assert type(out.cache).__name__ == "XATLCache"


def test_hook_get_deprecated_gen_repo(hybrid, monkeypatch):
    """Refuses modes moved to Hub code before transformers would fetch them, then forwards."""
    name = "_get_deprecated_gen_repo"
    _check_hook(hybrid, name, ["generation_mode", "trust_remote_code", "custom_generate"])
    _generate_through(monkeypatch, hybrid, name)


def test_hook_validate_generation_mode(hybrid, monkeypatch):
    """Refuses the modes a recurrent state cannot serve, then forwards to transformers' checks."""
    name = "_validate_generation_mode"
    _check_hook(hybrid, name, ["generation_mode", "generation_config", "generation_mode_kwargs"])
    _generate_through(monkeypatch, hybrid, name)


def test_hook_validate_generated_length(hybrid, monkeypatch):
    """Forwards to transformers' checks, then stops the generation at the softmax layer's context."""
    name = "_validate_generated_length"
    _check_hook(hybrid, name, ["generation_config", "input_ids_length", "has_default_max_length"])
    out = _generate_through(monkeypatch, hybrid, name, n_prompt=15)   # 15 + 2 tokens would pass the context of 16
    assert out.shape == (1, 16)

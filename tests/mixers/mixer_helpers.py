"""Shared helpers for the mixer tests: one tiny config per mixer case, a mixer with well-scaled random weights,
and the MixerContext a student would pass it."""

from __future__ import annotations

from functools import cache, partial

import torch
from torch import nn

import xatl
from tiny import tiny_donor
from xatl.mixers import MixerContext

CHUNK = 8
CASES = {                                                   # id -> (mixer, options)
    "linear-elu": ("linear", {}),
    "linear-relu": ("linear", {"feature_map": "relu"}),
    "linear-t2r": ("linear", {"feature_map": "t2r"}),
    "linear-hedgehog": ("linear", {"feature_map": "hedgehog", "feature_dim": 4}),
    "retention": ("retention", {}),
    "retention-xpos": ("retention", {"xpos": True}),
    "gla": ("gla", {}),
    "mamba": ("mamba", {}),
    "mamba2": ("mamba2", {}),
    "swa": ("swa", {"window": 5}),
    "lolcats": ("lolcats", {"window": 5, "feature_dim": 4}),
    "lolcats-elu": ("lolcats", {"window": 3, "feature_map": "elu", "init_window_factor": 1.0}),
    "lolcats-decay": ("lolcats", {"window": 5, "feature_dim": 4, "decay_span": 6}),
    "lolcats-cache": ("lolcats", {"window": 3, "feature_dim": 4, "sparse_cache": 4, "cache_evict": 1}),
    "lolcats-cache-decay": ("lolcats", {"window": 4, "feature_dim": 4, "sparse_cache": 2, "cache_evict": 3,
                                        "decay_span": 5}),
    "lolcats-long": ("lolcats", {"window": 4, "feature_dim": 4, "decay_span": 5, "linear_rope": False}),
    "lolcats-long-cache": ("lolcats", {"window": 3, "feature_dim": 4, "sparse_cache": 2, "cache_evict": 2,
                                       "decay_span": 5, "linear_rope": False}),
    "lolcats-sinks": ("lolcats", {"window": 3, "feature_dim": 4, "sinks": 2}),
    "lolcats-long-sinks": ("lolcats", {"window": 4, "feature_dim": 4, "decay_span": 5, "linear_rope": False,
                                       "sinks": 2}),
    "lolcats-sinks-cache": ("lolcats", {"window": 3, "feature_dim": 4, "sinks": 1, "sparse_cache": 2,
                                        "cache_evict": 2}),
    "lolcats-sinks-limit": ("lolcats", {"window": 4, "feature_dim": 4, "decay_span": 5, "linear_rope": False,
                                        "sinks": 2, "sink_position_limit": 20}),
    "lolcats-sinks-cache-limit": ("lolcats", {"window": 3, "feature_dim": 4, "sinks": 2, "sparse_cache": 2,
                                              "cache_evict": 2, "sink_position_limit": 20}),
    "lolcats-cache-far": ("lolcats", {"window": 3, "feature_dim": 4, "sinks": 1, "sparse_cache": 2, "cache_evict": 2,
                                      "decay_span": 5, "linear_rope": False, "cache_position_limit": 12}),
    "lolcats-logn": ("lolcats", {"window": 3, "feature_dim": 4, "sinks": 1, "sparse_cache": 2, "cache_evict": 2,
                                 "decay_span": 5, "linear_rope": False, "cache_position_limit": 12, "logn_scale": 16}),
    "deltanet": ("deltanet", {"conv_init": "uniform"}),
    "deltanet-noconv-gate": ("deltanet", {"use_short_conv": False, "use_gate": True, "allow_neg_eigval": True}),
    "gated_deltanet": ("gated_deltanet", {"conv_init": "uniform"}),
}
LCI_MIXERS = ("linear", "retention", "gla", "mamba", "mamba2", "swa", "lolcats", "deltanet", "gated_deltanet")


@cache
def donor(family: str = "llama"):
    return tiny_donor(family)


def config(case: str, family: str = "llama", **extra):
    name, opts = CASES[case]
    return xatl.student_config(donor(family).config, mixer=name, mixer_options=dict(opts, chunk_size=CHUNK, **extra))


def make_mixer(case: str, seed: int = 0, family: str = "llama", **extra):
    """(mixer of layer 0, the student's rotary module or None) with unit-scale random projections."""
    cfg = config(case, family, **extra)                     # first: the cached donor draws from the RNG once
    torch.manual_seed(seed)
    model = xatl.XATLForCausalLM(cfg)
    mixer = model.model.layers[0].mixer
    with torch.no_grad():
        for m in mixer.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, m.in_features**-0.5)
    return mixer.float().eval(), model.model.rotary


def context(rotary, x, position_ids=None, attention_mask=None) -> MixerContext:
    B, T = x.shape[:2]
    if position_ids is None:
        position_ids = torch.arange(T).expand(B, T)
    rope = rotary(x, position_ids) if rotary is not None else None
    return MixerContext(position_ids=position_ids, rope=rope, attention_mask=attention_mask,
                        rope_at=partial(rotary, x) if rotary is not None else None)

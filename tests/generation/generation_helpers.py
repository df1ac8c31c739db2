"""Shared helpers of the generation tests: the mixer variants, a character tokenizer, student building, prompts."""

from __future__ import annotations

import torch

import xatl
from tiny import EOS, VOCAB, char_tokenizer  # noqa: F401  (re-exported for the generation tests)
from xatl.mixers.registry import MIXERS, mixer_option_names

# untied head and a larger init: greedy outputs of the random tiny models vary instead of repeating one token;
# no EOS, so every generation runs to max_new_tokens
DONOR = dict(tie_word_embeddings=False, initializer_range=0.2, bos_token_id=None, eos_token_id=None,
             pad_token_id=None, max_position_embeddings=128)

# every mixer pure, and every LCI mixer as a hybrid keeping softmax attention at layer 1
VARIANTS = [(m, ()) for m in MIXERS] + [(m, (1,)) for m in MIXERS if m != "softmax"]
VARIANT_IDS = [m + ("+attn" + ",".join(map(str, a)) if a else "") for m, a in VARIANTS]
# the cheaper subset for the costlier checks: every mixer pure, and one hybrid
SOME_VARIANTS = [(m, ()) for m in MIXERS] + [("retention", (1,))]
SOME_VARIANT_IDS = [m + ("+attn" + ",".join(map(str, a)) if a else "") for m, a in SOME_VARIANTS]
LCI_MIXERS = [m for m, cls in MIXERS.items() if cls.recurrent]


def build_student(donor, mixer: str, attention_layers=(), **overrides):
    """A student of ``donor`` transferred with the default copy set, in eval mode. Mixers with a chunked form run
    it with chunks of 4 so that short prompts cross chunk boundaries."""
    options = {"chunk_size": 4} if "chunk_size" in mixer_option_names(mixer) else {}
    cfg = xatl.student_config(donor.config, mixer=mixer, attention_layers=list(attention_layers),
                              mixer_options=options, **overrides)
    torch.manual_seed(0)
    student, report = xatl.transfer(donor, cfg)
    return student.eval(), report


def prompt_ids(n: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    """(batch, n) random token ids (never 0 = EOS/pad)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, n), generator=g)

"""A model that solves retrieval by construction, for the long-context task tests: an induction "copy model".

At each position it finds the longest earlier match of the current suffix in the context (the most recent one on a
tie) and predicts the token that followed it: what an ideal induction head does. It is a transformers
``PreTrainedModel`` + ``GenerationMixin``, so ``generate()`` drives it like any causal LM (without a cache: every
step sees the whole sequence).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class CopyConfig(PretrainedConfig):
    model_type = "xatl_test_copy"

    def __init__(self, vocab_size: int = 99, **kwargs):
        kwargs.setdefault("use_cache", False)
        super().__init__(**kwargs)
        self.vocab_size = vocab_size


def induction_next(seq: np.ndarray) -> int:
    """The token after the most recent longest earlier match of ``seq``'s suffix (seq[-1] when nothing matches)."""
    t = len(seq) - 1
    alive = np.flatnonzero(seq[:t] == seq[t])                # ends of earlier matches of length 1
    k = 1
    while alive.size > 1 and k <= t:
        ok = alive[alive - k >= 0]
        ok = ok[seq[ok - k] == seq[t - k]]
        if ok.size == 0:
            break
        alive, k = ok, k + 1
    return int(seq[alive.max() + 1]) if alive.size else int(seq[t])


class CopyModel(PreTrainedModel, GenerationMixin):
    config_class = CopyConfig

    def __init__(self, config: CopyConfig):
        super().__init__(config)
        self.anchor = nn.Parameter(torch.zeros(1))             # a parameter, so that the device can be read
        self.post_init()
        self.generation_config.use_cache = False

    def forward(self, input_ids: torch.LongTensor, attention_mask=None, logits_to_keep=0, **kwargs):
        """Logits (B, K, V): +1e4 on the induction prediction, 0 elsewhere, at the kept positions."""
        B, T = input_ids.shape
        if isinstance(logits_to_keep, int):
            positions = list(range(T - logits_to_keep, T)) if logits_to_keep > 0 else list(range(T))
        else:
            positions = logits_to_keep.tolist()
        logits = torch.zeros(B, len(positions), self.config.vocab_size)
        ids = input_ids.cpu().numpy()
        for b in range(B):
            for j, p in enumerate(positions):
                logits[b, j, induction_next(ids[b, :p + 1])] = 1e4
        return CausalLMOutputWithPast(logits=logits.to(input_ids.device))

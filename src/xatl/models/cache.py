"""XATLCache: what a student carries between forward calls during decoding.

One mixer state per layer (see ``xatl.mixers.base``): a fixed-size recurrent state for LCI mixers, a growing
KV cache for softmax layers of hybrids. Every state tensor has the batch as dim 0.
"""

from __future__ import annotations

import torch


class XATLCache:
    """Per-layer mixer states plus the number of tokens already seen.

    states[i]: the state dict of layer i, or None before the first forward.
    """

    is_compileable = False

    def __init__(self, config=None, num_layers: int | None = None):
        n = num_layers if num_layers is not None else config.num_hidden_layers
        self.states: list[dict[str, torch.Tensor] | None] = [None] * n
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.states)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens processed so far (the position of the next token)."""
        return self.seen_tokens

    def advance(self, num_tokens: int) -> None:
        self.seen_tokens += num_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Select/reorder batch rows of every state (beam search)."""
        for i, state in enumerate(self.states):
            if state is not None:
                self.states[i] = {k: v.index_select(0, beam_idx.to(v.device)) for k, v in state.items()}

    def nbytes(self) -> int:
        """Bytes held by all state tensors."""
        return sum(t.numel() * t.element_size() for s in self.states if s is not None for t in s.values())

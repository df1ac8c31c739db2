"""XATLCache: what a student carries between forward calls during decoding.

One mixer state per layer (see ``xatl.mixers.base``): a fixed-size recurrent state for LCI mixers (plus a conv
state for Mamba-like mixers), a growing KV cache for softmax layers of hybrids, a bounded window for sliding-window
layers. The cache never looks inside a state: every state is a flat ``dict[str, Tensor]`` whose tensors have the
batch as dim 0, which is all that beam search (row selection) and memory accounting need.

The cache plugs into ``transformers`` ``generate()`` (5.x): besides the states it answers the handful of questions
the generation loop asks a cache object (``get_seq_length``, ``reorder_cache``, ``is_compileable``, ``is_linear``,
``is_croppable``, ...). It cannot roll back (no ``crop``), so assisted decoding is refused by the model.

This file is part of the self-contained model code written next to saved students (``trust_remote_code``).
"""

from __future__ import annotations

import torch

from ..errors import GenerationError


class XATLCache:
    """Per-layer mixer states plus the number of tokens already seen.

    states[i]: the state dict of layer i, or None before the first forward.
    seen_tokens: tokens processed so far, padding included (= the length of the attention mask seen so far).
    """

    is_compileable = False
    is_croppable = False

    def __init__(self, config=None, num_layers: int | None = None):
        if num_layers is None and config is None:
            raise GenerationError("XATLCache needs the model config (or num_layers): XATLCache(model.config)")
        n = num_layers if num_layers is not None else config.num_hidden_layers
        self.states: list[dict[str, torch.Tensor] | None] = [None] * n
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.states)

    def __repr__(self) -> str:
        return (f"XATLCache(layers={len(self)}, seen_tokens={self.seen_tokens}, batch_size={self.batch_size}, "
                f"nbytes={self.nbytes()})")

    # ------------------------------------------------------------------ what the model and generate() read
    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens processed so far (the position of the next token, padding included)."""
        return self.seen_tokens

    def get_max_length(self, layer_idx: int | None = None) -> int:
        """-1: no fixed maximum (transformers' convention for dynamic caches)."""
        return -1

    def advance(self, num_tokens: int) -> None:
        self.seen_tokens += num_tokens

    @property
    def batch_size(self) -> int:
        """Rows held by the states, or -1 before the first forward."""
        for state in self.states:
            if state:
                return next(iter(state.values())).shape[0]
        return -1

    @property
    def is_linear(self) -> list[bool]:
        """transformers asks this to decide whether the cache counts the tokens it has seen (it slices the prompt by
        ``get_seq_length()`` when a cache is passed back into ``generate()``, e.g. to continue a chat). This cache
        always counts them, whatever the mixer, so every layer answers False."""
        return [False] * len(self)

    @property
    def is_sliding(self) -> list[bool]:
        return [False] * len(self)

    # ------------------------------------------------------------------ batch surgery (beam search)
    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Select/reorder batch rows of every state (beam search). beam_idx: (B',) row indices."""
        for i, state in enumerate(self.states):
            if state is not None:
                self.states[i] = {k: v.index_select(0, beam_idx.to(v.device)) for k, v in state.items()}

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.reorder_cache(indices)

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times (row b -> rows b*repeats .. b*repeats + repeats - 1)."""
        for i, state in enumerate(self.states):
            if state is not None:
                self.states[i] = {k: v.repeat_interleave(repeats, dim=0) for k, v in state.items()}

    def reset(self) -> None:
        """Forget everything (back to an empty cache)."""
        self.states = [None] * len(self)
        self.seen_tokens = 0

    # ------------------------------------------------------------------ rollback: not possible
    def crop(self, tokens_to_remove: int) -> None:
        """Only ``crop(0)`` (a no-op): a recurrent state cannot give back tokens it has absorbed."""
        if tokens_to_remove:
            raise GenerationError("an XATLCache cannot be rolled back (recurrent states absorb every token); "
                                  "decoding modes that undo tokens, such as assisted decoding, are not supported")

    def activate_past_recording(self) -> None:
        raise GenerationError("an XATLCache cannot record past states for rollback; use greedy, sampling or beam "
                              "search decoding instead of assisted decoding")

    # ------------------------------------------------------------------ memory
    def layer_nbytes(self) -> list[int]:
        """Bytes held by each layer's state tensors (0 for layers not run yet)."""
        return [sum(t.numel() * t.element_size() for t in s.values()) if s is not None else 0 for s in self.states]

    def nbytes(self) -> int:
        """Bytes held by all state tensors."""
        return sum(self.layer_nbytes())

"""``swa``: sliding-window softmax attention: each token attends to the ``window`` most recent tokens (itself
included). Cost linear in the context length, state of fixed size.

The projections are the donor's own (H query heads, H_kv key/value heads, its RoPE, scale and biases), so the
donor's Q/K/V/O copy in unchanged; with a window as long as the text it *is* the donor's attention.
State: {"k", "v": (B, H_kv, w, D) rotated keys and values of the last w positions, "valid": (B, w) bool}: a
window that shifts by one position per token, its size independent of the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops.sliding_window import FORMS
from ..ops.utils import run_form
from .base import LCIOptions, Mixer, MixerContext, State, merge_heads, padding_mask
from .projections import donor_attention_projections, donor_qkv


@dataclass
class SWAOptions(LCIOptions):
    window: int = 512
    """Tokens each query sees (itself included)."""

    def validate(self) -> None:
        super().validate()
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


class SlidingWindowAttention(Mixer):
    name = "swa"
    Options = SWAOptions

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        donor_attention_projections(self, config, layer_idx)

    def init_state(self, batch_size, device, dtype) -> State:
        shape = (batch_size, self.num_kv_heads, self.opts.window, self.head_dim)
        return {"k": torch.zeros(shape, device=device, dtype=torch.float32),
                "v": torch.zeros(shape, device=device, dtype=torch.float32),
                "valid": torch.zeros(batch_size, self.opts.window, device=device, dtype=torch.bool)}

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q, k, v = donor_qkv(self, x, ctx)                                  # (B, H | H_kv, T, D), rotated
        init = (state["k"], state["v"], state["valid"]) if state is not None else None
        kw = dict(scale=self.scale, key_mask=padding_mask(ctx, T), initial_state=init, output_final_state=use_cache)
        o, final = run_form(FORMS, self._form_for(T, state), q, k, v, self.opts.window, **kw,
                            chunked=dict(chunk_size=self.opts.chunk_size))
        new_state = dict(zip(("k", "v", "valid"), final)) if use_cache else None
        return self.o_proj(merge_heads(o)), new_state

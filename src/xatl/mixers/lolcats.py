"""``lolcats``: sliding-window softmax attention over the last ``window`` tokens plus linear attention with a learned
feature map (Hedgehog by default) over everything older, combined in one normalised sum per head (LoLCATs, Zhang
et al. 2024; the math is in ``xatl.ops.window_linear``). ``decay_span`` adds xatl's decayed variant of the linear
part, for contexts longer than the training blocks.

The projections are the donor's own (H query heads, H_kv key/value heads, its RoPE, scale and biases), so the
donor's Q/K/V/O copy in unchanged and the window part *is* the donor's attention over the window; the feature
maps (applied to the rotated queries and keys, as in LoLCATs) and the per-head window factor are new. The
attention-transfer stage (``xatl heal``) trains just those to reproduce the donor's attention outputs.
State: {"k", "v": (B, H_kv, w, D) rotated keys/values of the last w positions, "valid": (B, w) bool,
"kv": (B, H, F, D), "k_sum": (B, H, F)}; with ``sparse_cache`` also {"cache_k", "cache_v": (B, H, N, D),
"cache_valid": (B, H, N), "cache_pos": (B, H, N) long}, N = sinks + sparse_cache + cache_evict; with ``sinks`` alone {"sink_k", "sink_v": (B, H_kv,
sinks, D), "sink_held": (B, sinks)}; with ``linear_rope=False`` the window's (and cache's) unrotated keys: fixed
size, whatever the sequence length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init

from ..ops.rope import apply_rope
from ..ops.utils import run_form
from ..ops.window_linear import FORMS
from ..ops.window_linear_cache import FORMS as CACHE_FORMS
from .base import Mixer, MixerContext, State, merge_heads, padding_mask
from .feature_maps import FeatureMapOptions
from .projections import donor_attention_projections, donor_qkv


@dataclass
class LolcatsOptions(FeatureMapOptions):
    feature_map: str = "hedgehog"
    """Feature map of the linear part (queries and keys have one each): hedgehog, t2r, elu or relu."""
    window: int = 64
    """Tokens each query sees through softmax attention (itself included); older ones go through the linear part."""
    init_window_factor: float = 0.0
    """Initial value of the per-head window-factor parameter; the softmax terms are scaled by its sigmoid (LoLCATs'
    default 0: factor 0.5; the linear terms have factor 1)."""
    decay_span: float = 0.0
    """0: no decay (LoLCATs). N > 1: xatl's decayed variant: the linear part forgets at a learned per-head rate
    gamma_h, initialised to 1 - 1/N, so it sums about N keys however long the context (see ``xatl.ops.window_linear``);
    choose N within the training block length so that long inputs look like trained ones."""
    sparse_cache: int = 0
    """0: none. N > 0: LoLA's sparse cache (McDermott et al. 2025): the N key/value pairs per head that the linear
    state predicts worst stay exact in the softmax part (``xatl.ops.window_linear_cache``); needs no training, so it
    can be switched on in a healed student's config."""
    linear_rope: bool = True
    """True: the linear part's feature maps see the rotated queries and keys (LoLCATs), so its scores depend on
    absolute positions, including ones never trained on. False (xatl's variant): they see them before RoPE, so the
    linear part is position-free (recency comes from ``decay_span``); the window keeps the donor's RoPE."""
    cache_evict: int = 64
    """With ``sparse_cache``: the cache holds up to sparse_cache + cache_evict pairs; when full, the cache_evict pairs
    the linear state predicts best move into it at once (LoLA evicts per chunk; 1 decides at every token)."""
    sinks: int = 0
    """0: none. N > 0: attention sinks (StreamingLLM, Xiao et al. 2024): the first N tokens stay exact in the softmax
    part for every query, however long the context (the donor's heads park much of their attention there, which
    the linear part cannot reproduce); needs no new weights. With ``sparse_cache`` they take N of its slots more."""
    cache_while_training: bool = True
    """With ``sparse_cache``: False runs training forwards (module in train mode, no state) without LoLA's cache,
    in the faster window + linear op, and keeps the cache for evaluation and generation: the cache needs no
    training (LoLA adds it to trained LoLCATs models), so a student can heal without paying for it."""
    sink_position_limit: int = 0
    """With ``sinks``: queries past this position score the sinks as if they stood at it, so that no query meets a
    sink further away than the donor's context (a pure student runs past it; the donor never saw such distances).
    StreamingLLM gives its sinks window-relative positions for the same reason. 0: the donor's context,
    max_position_embeddings - 1 (below it nothing changes)."""
    cache_position_limit: int = 0
    """With ``sparse_cache`` and ``linear_rope=False``: a cached pair more than this many tokens back is scored as if
    exactly this far (ReRoPE's rectified distance, on the unrotated keys the cache keeps for the linear part), so
    that no query meets a cached pair further away than the donor's context. Without it LoLA's cache keeps pairs
    from anywhere in a long input at their true distance. 0: the donor's context, max_position_embeddings - 1."""
    logn_scale: int = 0
    """0: off. N > 1: a query at position t >= N scales its softmax-part logits (window, sinks and cached pairs) by
    log(t + 1) / log(N) (the entropy-invariant "logn" scaling of Qwen's long-context attention, Su 2021), so that
    its attention over the many exact pairs of a long input stays as sharp as over the N tokens it trained on; the
    linear part is untouched. Below N nothing changes; needs no training."""

    @property
    def cache_size(self) -> int:
        """LoLA's cache op's exact pairs (its sparse cache and the sinks); 0: the window + linear op (sinks and all)."""
        return self.sparse_cache + self.sinks if self.sparse_cache else 0

    def validate(self) -> None:
        super().validate()
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.sparse_cache < 0:
            raise ValueError(f"sparse_cache must be >= 0 (pairs per head), got {self.sparse_cache}")
        if self.sinks < 0:
            raise ValueError(f"sinks must be >= 0 (first tokens kept exact), got {self.sinks}")
        if self.cache_position_limit < 0:
            raise ValueError(f"cache_position_limit must be >= 0 (0: the donor's context), got "
                             f"{self.cache_position_limit}")
        if self.cache_position_limit and self.linear_rope:
            raise ValueError("cache_position_limit needs linear_rope=false (far cached pairs are scored on the unrotated "
                             "keys that only the position-free linear part keeps); drop it or set linear_rope=false")
        if self.sink_position_limit < 0:
            raise ValueError(f"sink_position_limit must be >= 0 (0: the donor's context), got "
                             f"{self.sink_position_limit}")
        if self.logn_scale < 0 or self.logn_scale == 1:
            raise ValueError(f"logn_scale must be 0 (off) or > 1 (the trained length), got {self.logn_scale}")
        if self.cache_evict < 1:
            raise ValueError(f"cache_evict must be >= 1, got {self.cache_evict}")
        if self.decay_span != 0 and not self.decay_span > 1:
            raise ValueError(f"decay_span must be 0 (no decay) or > 1 (tokens), got {self.decay_span}")


class LolcatsAttention(Mixer):
    name = "lolcats"
    Options = LolcatsOptions
    init_notes = {"window_factor": "init_window_factor (sigmoid: the softmax terms' factor)",
                  "decay": "log(-log(1 - 1/decay_span)): gamma = exp(-exp(decay)) = 1 - 1/decay_span"}

    def __init__(self, config, layer_idx: int, **options):
        super().__init__(config, layer_idx, **options)
        donor_attention_projections(self, config, layer_idx)
        self.q_map, self.k_map = self.opts.build_maps(self.num_heads, self.head_dim)
        self.window_factor = nn.Parameter(torch.empty(self.num_heads))
        self.decay = nn.Parameter(torch.empty(self.num_heads)) if self.opts.decay_span else None
        self.sink_limit = self.opts.sink_position_limit or config.max_position_embeddings - 1
        self.cache_limit = self.opts.cache_position_limit or config.max_position_embeddings - 1
        self._xatl_init(0.0)

    def _xatl_init(self, std: float) -> None:
        init.constant_(self.window_factor, self.opts.init_window_factor)
        if self.decay is not None:
            init.constant_(self.decay, math.log(-math.log1p(-1.0 / self.opts.decay_span)))

    def log_decay(self) -> torch.Tensor | None:
        """log(gamma_h) (H,) of the linear part, or None without decay."""
        return -torch.exp(self.decay.float()) if self.decay is not None else None

    def _state_layout(self, batch_size: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """The op's state in its order: name -> (shape, dtype) (module docstring)."""
        B, H, Hkv, D, w, Fd = (batch_size, self.num_heads, self.num_kv_heads, self.head_dim, self.opts.window,
                               self.k_map.out_dim)
        f, b = torch.float32, torch.bool
        layout = {"k": ((B, Hkv, w, D), f), "v": ((B, Hkv, w, D), f), "valid": ((B, w), b),
                  "kv": ((B, H, Fd, D), f), "k_sum": ((B, H, Fd), f)}
        N = self.opts.cache_size + self.opts.cache_evict
        if self.opts.cache_size:
            layout.update(cache_k=((B, H, N, D), f), cache_v=((B, H, N, D), f), cache_valid=((B, H, N), b),
                          cache_pos=((B, H, N), torch.long))
        if not self.opts.linear_rope:
            layout["k_lin"] = ((B, Hkv, w, D), f)
            if self.opts.cache_size:
                layout["cache_k_lin"] = ((B, H, N, D), f)
        if self.opts.sinks and not self.opts.cache_size:
            n = self.opts.sinks
            layout.update(sink_k=((B, Hkv, n, D), f), sink_v=((B, Hkv, n, D), f), sink_held=((B, n), b))
        return layout

    def _uses_cache(self, state: State | None, use_cache: bool) -> bool:
        """Whether this forward runs LoLA's cache op (``cache_while_training``)."""
        if not self.opts.cache_size:
            return False
        return self.opts.cache_while_training or not self.training or state is not None or use_cache

    def init_state(self, batch_size, device, dtype) -> State:
        return {key: torch.zeros(shape, dtype=dt, device=device)
                for key, (shape, dt) in self._state_layout(batch_size).items()}

    def state_keys(self) -> tuple[str, ...]:
        """The order of the op's state tuple."""
        return tuple(self._state_layout(0))

    def sink_queries(self, q_raw, ctx: MixerContext):
        """The queries the sinks are scored against (B, H, T, D): q_raw rotated at min(position, ``sink_limit``), so
        that no query meets a sink further away than that; None (the rotated q itself) while no query is past it."""
        capped = ctx.rope_capped(self.sink_limit) if self.opts.sinks else None
        return apply_rope(q_raw, *capped) if capped is not None else None

    def far_queries(self, q_raw, ctx: MixerContext):
        """The queries that score cached pairs further back than ``cache_limit`` (B, H, T, D): q_raw rotated at
        ``cache_limit``, against their unrotated keys; None while no pair can be that far (or with linear_rope)."""
        fixed = None if self.opts.linear_rope else ctx.rope_fixed(self.cache_limit)
        return apply_rope(q_raw, *fixed) if fixed is not None else None

    def logn_factor(self, ctx: MixerContext) -> torch.Tensor | None:
        """The softmax part's logit factor (B, 1, T, 1): max(1, log(t + 1) / log(``logn_scale``)) at each query
        position t; None when off or while no position reaches ``logn_scale`` (``MixerContext.logn_factor``, shared
        by every layer of the forward call)."""
        return ctx.logn_factor(self.opts.logn_scale) if self.opts.logn_scale else None

    def forward(self, x, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        """x (B, T, C) -> (B, T, C)."""
        T = x.shape[1]
        q, k, v, q_raw, k_raw = donor_qkv(self, x, ctx, unrotated=True)   # (B, H | H_kv, T, D); rotated, and not
        keys = self.state_keys()
        init_state = tuple(state[key] for key in keys) if state is not None else None
        kw = dict(scale=self.scale, key_mask=padding_mask(ctx, T), initial_state=init_state,
                  output_final_state=use_cache, log_decay=self.log_decay())
        if not self.opts.linear_rope:
            kw["k_lin"] = k_raw
        fq = self.q_map(q if self.opts.linear_rope else q_raw)
        logn = self.logn_factor(ctx)
        if logn is not None:                                    # the softmax part's queries only (after fq)
            q, q_raw = q * logn.to(q.dtype), q_raw * logn.to(q_raw.dtype)
        args = (q, k, v, fq, self.k_map, torch.sigmoid(self.window_factor), self.opts.window)
        q_sink = self.sink_queries(q_raw, ctx)
        if self._uses_cache(state, use_cache):
            forms, extra = CACHE_FORMS, (self.opts.cache_size, self.opts.cache_evict)
            kw.update(pinned=self.opts.sinks, q_pinned=q_sink, far=self.cache_limit, q_far=self.far_queries(q_raw, ctx))
        else:
            forms, extra = FORMS, ()
            kw.update(sinks=self.opts.sinks, q_sink=q_sink)
        o, final = run_form(forms, self._form_for(T, state), *args, *extra, **kw,
                            chunked=dict(chunk_size=self.opts.chunk_size))
        new_state = dict(zip(keys, final)) if use_cache else None
        return self.o_proj(merge_heads(o)), new_state

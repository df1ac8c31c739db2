"""Per-token negative log-likelihood of one long sequence in bounded memory.

``model(ids).logits`` of an 8k-token row is a (T, V) tensor: 1.6 GB in fp32 for a 49k vocabulary. Here the
backbone (``model.base_model``: embeddings, blocks, final norm) runs over the sequence in chunks of ``chunk``
tokens, carrying its cache (an ``XATLCache`` for a student, a ``DynamicCache`` for a transformers model), and each
chunk's hidden states (1, n, D) go through the LM head at once, softcapped where the config says so (Gemma's
``final_logit_softcapping``), to a float32 log-softmax and the NLL of the next tokens; the logits are then dropped.
So at most ``chunk`` positions of logits exist at a time, and a softmax model never builds a T x T attention
matrix (a chunk attends to the cache: n x T).

Since a causal LM's output at position p depends on tokens 0..p only, the chunked run gives the losses of one full
forward, up to float rounding; :func:`check_head` holds the two equal on the first chunk of every run, so a model
whose logits are not ``lm_head(backbone(ids))`` (a logit scale, an unknown head) is refused instead of mis-scored.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .state import cache_bytes, text_config


def _backbone(model):
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        raise ConfigError(f"{type(model).__name__} has no separate backbone (base_model) to run in chunks; "
                          "perplexity by position needs a transformers causal LM or an xatl student")
    return base


def backbone_step(model, ids: torch.Tensor, cache):
    """One chunk through the backbone: ids (1, n) -> (hidden (1, n, D), cache after it)."""
    out = _backbone(model)(input_ids=ids, cache=cache, use_cache=True)       # transformers 5: ``cache`` everywhere
    return out.last_hidden_state, getattr(out, "cache", None)


def head_nll(model, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """hidden (n, D), targets (n,) -> NLL (n,) float32: ``lm_head``, softcap (model dtype, as the model does), then
    a float32 log-softmax."""
    logits = model.get_output_embeddings()(hidden)                              # (n, V)
    cap = getattr(text_config(model.config), "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits.float(), targets, reduction="none")


def _stops(T: int, chunk: int, measure_at: Iterable[int]) -> list[int]:
    """Where the chunks end: every ``chunk`` tokens, at each length in ``measure_at`` below T, and at T."""
    return sorted({*range(chunk, T, chunk), *(n for n in measure_at if 0 < n < T), T})


@torch.inference_mode()
def token_nll(model, ids: torch.Tensor, *, chunk: int = 512,
              measure_at: Iterable[int] = ()) -> tuple[torch.Tensor, dict[int, int]]:
    """ids (1, T) -> (nll (T - 1,) float32 on the CPU, {n: cache bytes after the first n tokens}).

    ``nll[p - 1] = -log P(ids[p] | ids[:p])``: the loss of the token at position p (p = 1 .. T - 1), predicted
    from the p tokens before it. ``measure_at``: lengths n <= T at which to measure the cache."""
    T = ids.shape[1]
    measure = set(measure_at)
    cache, start, hidden_all_at_once = None, 0, False
    out = torch.empty(T - 1, dtype=torch.float32)
    state: dict[int, int] = {}
    for stop in _stops(T, chunk, measure):
        hidden, cache = backbone_step(model, ids[:, start:stop], cache)            # (1, n, D)
        if cache is None:                        # no cache from this model: one full pass, then the head in chunks
            hidden_all_at_once = True
            break
        _score(model, hidden[0], ids[0], start, out)
        if stop in measure:
            state[stop] = cache_bytes(cache)
        start = stop
    if hidden_all_at_once:
        hidden = _backbone(model)(input_ids=ids, use_cache=False).last_hidden_state[0]          # (T, D)
        for s in range(0, T - 1, chunk):
            _score(model, hidden[s:s + chunk], ids[0], s, out)
    return out, state


def _score(model, hidden: torch.Tensor, ids: torch.Tensor, start: int, out: torch.Tensor) -> None:
    """NLL of the tokens after positions start .. start + n - 1 (hidden (n, D)) into ``out`` (T - 1,)."""
    n = min(hidden.shape[0], ids.shape[0] - 1 - start)          # the last position predicts nothing
    if n > 0:
        out[start:start + n] = head_nll(model, hidden[:n], ids[start + 1:start + 1 + n]).cpu()


@torch.inference_mode()
def check_head(model, ids: torch.Tensor, nll: torch.Tensor) -> float:
    """Refuse (ConfigError) a model whose chunked losses ``nll`` (T - 1,) differ from those of ``model(ids).logits``
    on ids (1, T) (T: one chunk). -> the largest difference."""
    logits = model(input_ids=ids).logits[0, :-1].float()                          # (T - 1, V)
    full = F.cross_entropy(logits, ids[0, 1:], reduction="none").cpu()
    tol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2
    diff = (full - nll).abs().max().item() if nll.numel() else 0.0
    if not diff <= tol * max(1.0, full.abs().max().item()):
        raise ConfigError(f"the chunked loss of {type(model).__name__} differs from model(ids).logits by {diff:.3g} "
                          "(its logits are not lm_head(backbone(ids))); perplexity by position cannot score it")
    return diff

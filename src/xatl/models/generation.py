"""Generation plumbing of the XATL student: transformers' own ``generate()``, decoding with an `XATLCache`.

The prompt runs once through the chunked form, then one recurrent step per token. `XATLGenerationMixin` hooks
into ``transformers.GenerationMixin`` where the recurrent cache differs from a KV cache:

* ``generate``: refuses an empty prompt and paged continuous batching;
* ``_supports_default_dynamic_cache`` / ``_prepare_cache_for_generation``: an XATLCache instead of a DynamicCache;
* ``_get_deprecated_gen_repo`` / ``_validate_generation_mode``: refuses the decoding modes a recurrent state
  cannot serve (they must roll the cache back), before transformers would fetch Hub code for them;
* ``_validate_generated_length``: the context of softmax layers (or learned positions) bounds the generation.

These are private transformers methods: ``tests/models/test_generation_hooks.py`` checks each one still exists,
takes the arguments used here and is reached by ``generate()``, so that a transformers upgrade names the hook
it breaks. The helpers below (`check_prompt`, `check_cache`, `context_limit` ...) are plain functions.
"""

from __future__ import annotations

import logging

import torch
from transformers import GenerationMixin
from transformers.generation import GenerationMode

from ..errors import GenerationError
from ..mixers.registry import keeps_donor_attention
from .cache import XATLCache
from .configuration_xatl import XATLConfig

logger = logging.getLogger(__name__)


class XATLGenerationMixin(GenerationMixin):
    """``GenerationMixin`` for models whose ``forward`` takes and returns an `XATLCache` as ``cache`` (transformers
    5.x ``generate()``). Needs ``self.config`` (an XATLConfig) and ``self.generation_config``."""

    def generate(self, inputs: torch.Tensor | None = None, generation_config=None, **kwargs):
        """``GenerationMixin.generate`` after refusing what the recurrent cache cannot serve (empty prompt, paged
        continuous batching). Greedy, sampling, beam search/sampling, left-padded batches with ``attention_mask``,
        ``max_new_tokens``, ``stop_strings`` (with ``tokenizer=``) and ``streamer`` all work as for any HF model."""
        check_prompt(inputs if inputs is not None else kwargs.get("input_ids"), kwargs.get("inputs_embeds"),
                     kwargs.get("bos_token_id", (generation_config or self.generation_config).bos_token_id))
        if kwargs.get("cache_implementation") == "paged":
            raise GenerationError("paged continuous batching keeps a paged KV cache, which XATL students do not "
                                  "have; call generate() without cache_implementation='paged'")
        return super().generate(inputs, generation_config, **kwargs)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """No DynamicCache: the student keeps per-layer mixer states in an XATLCache."""
        return False

    def _prepare_cache_for_generation(self, generation_config, model_kwargs, generation_mode, batch_size,
                                      max_cache_length) -> None:
        """Put a fresh XATLCache in ``model_kwargs["cache"]`` (or check the one the caller passed, e.g. to continue
        a conversation: generate() then runs only the tokens the cache has not seen)."""
        impl = generation_config.cache_implementation
        if impl not in (None, "dynamic"):
            raise GenerationError(f"cache_implementation={impl!r} is not supported: XATL students decode with an "
                                  "XATLCache of per-layer mixer states; leave cache_implementation unset")
        cache = model_kwargs.get("cache")
        if cache is not None:
            if not isinstance(cache, XATLCache):
                raise GenerationError(f"an XATL student decodes with an XATLCache, not a {type(cache).__name__}; "
                                      "pass cache=XATLCache(model.config) or no cache at all")
            cache._is_user_defined = True
        elif generation_config.use_cache:
            model_kwargs["cache"] = XATLCache(self.config)

    def _get_deprecated_gen_repo(self, generation_mode, trust_remote_code, custom_generate=None):
        """Modes moved to Hub code are refused here already, before transformers would try to download them."""
        check_generation_mode(generation_mode)
        return super()._get_deprecated_gen_repo(generation_mode, trust_remote_code, custom_generate)

    def _validate_generation_mode(self, generation_mode, generation_config, generation_mode_kwargs) -> None:
        check_generation_mode(generation_mode)
        super()._validate_generation_mode(generation_mode, generation_config, generation_mode_kwargs)

    def _validate_generated_length(self, generation_config, input_ids_length, has_default_max_length) -> None:
        """transformers' checks, then the context of softmax layers (or learned positions): a prompt beyond it is
        refused; a generation that would run past it is stopped there (with a warning)."""
        super()._validate_generated_length(generation_config, input_ids_length, has_default_max_length)
        limit = context_limit(self.config)
        if limit is None:
            return
        if input_ids_length > limit:
            raise GenerationError(f"the prompt has {input_ids_length} tokens but this student's "
                                  f"{limit_reason(self.config)} covers at most {limit} positions "
                                  "(max_position_embeddings); shorten the prompt or use a student without softmax "
                                  "layers")
        if generation_config.max_length > limit:
            logger.warning("generation stops at %d tokens (prompt included): the %s covers at most %d positions",
                           limit, limit_reason(self.config), limit)
            generation_config.max_length = limit


# ---------------------------------------------------------------------- generation modes
SUPPORTED_GENERATION_MODES = (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE, GenerationMode.BEAM_SEARCH,
                              GenerationMode.BEAM_SAMPLE)
UNSUPPORTED_GENERATION_MODES = {
    GenerationMode.ASSISTED_GENERATION: "assisted/speculative decoding (assistant_model, prompt_lookup_num_tokens) "
    "must roll back rejected tokens, and a recurrent state cannot give tokens back",
    GenerationMode.CONTRASTIVE_SEARCH: "contrastive search (penalty_alpha with top_k) re-scores candidate tokens "
    "by rolling the cache back, which a recurrent state cannot do",
    GenerationMode.DOLA_GENERATION: "DoLa decoding is only available as Hub code (custom_generate) in transformers 5",
    GenerationMode.GROUP_BEAM_SEARCH: "group beam search is only available as Hub code (custom_generate) in "
    "transformers 5",
    GenerationMode.CONSTRAINED_BEAM_SEARCH: "constrained beam search is only available as Hub code "
    "(custom_generate) in transformers 5",
}


def check_generation_mode(generation_mode) -> None:
    """Refuse the decoding modes the XATLCache cannot serve (GenerationError naming the reason and what works)."""
    if generation_mode not in SUPPORTED_GENERATION_MODES:
        why = UNSUPPORTED_GENERATION_MODES.get(generation_mode, "it is not supported")
        raise GenerationError(f"generation mode {generation_mode.value!r} is not available for XATL students: {why}; "
                              "use greedy decoding, sampling (do_sample=True) or beam search (num_beams > 1)")


# ---------------------------------------------------------------------- context, prompt and cache checks
def context_limit(config: XATLConfig) -> int | None:
    """The longest sequence the student can decode: ``max_position_embeddings`` when a layer keeps the donor's
    softmax attention (trained only that far; its KV cache grows with the context) or positions are learned
    embeddings; None (unbounded) for students whose every mixer is LCI with rotary or no positions."""
    if config.position_embedding == "learned" or any(keeps_donor_attention(m) for m in config.layer_mixers):
        return config.max_position_embeddings
    return None


def limit_reason(config: XATLConfig) -> str:
    """What sets `context_limit`, in words."""
    if config.position_embedding == "learned":
        return "learned position embedding"
    layers = [i for i, m in enumerate(config.layer_mixers) if keeps_donor_attention(m)]
    return f"softmax attention (layers {layers})"


def check_prompt(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, bos_token_id) -> None:
    """Refuse an empty prompt (input_ids (B, 0)), or no prompt at all when there is no BOS token to start from."""
    if inputs_embeds is not None:
        if inputs_embeds.shape[1] == 0:
            raise GenerationError("the prompt is empty (inputs_embeds has no positions); pass at least one token")
        return
    if input_ids is None:
        if bos_token_id is None:
            raise GenerationError("no prompt was given and the model has no bos_token_id to start from; pass a "
                                  "non-empty prompt")
        return
    if input_ids.numel() == 0 or input_ids.shape[-1] == 0:
        raise GenerationError("the prompt is empty (0 tokens); pass at least one token (e.g. the BOS token)")


def check_cache(cache, batch_size: int) -> None:
    """Refuse a cache that is not an XATLCache or holds a different number of rows than the input."""
    if not isinstance(cache, XATLCache):
        raise GenerationError(f"an XATL student decodes with an XATLCache, not a {type(cache).__name__}; pass "
                              "cache=XATLCache(model.config) or no cache at all")
    if cache.batch_size not in (-1, batch_size):
        raise GenerationError(f"the cache holds {cache.batch_size} sequences but the input has {batch_size}; use "
                              "one cache per batch (cache.reorder_cache(indices) selects rows)")

"""The XATL student: the donor's skeleton with a token mixer chosen per layer.

    x = embed(ids) [* embed_scale] [+ learned positions]
    for each block:  sequential: h = x + mixer(norm1(x));  x = h + mlp(norm2(h))
                     parallel  : x = x + mixer(norm1(x)) + mlp(norm2(x))          (GPT-NeoX)
                     post/sandwich norms (OLMo 2 / Gemma): h = x + post1(mixer([norm1](x))), likewise the MLP
    logits = lm_head(norm(x))   [softcapped: cap * tanh(logits / cap)]

Blocks know nothing about the mixer inside them (mamba_ssm's ``Block(dim, mixer_cls, ...)``). Decoding with
``generate()`` and its checks live in ``generation.py`` (`XATLGenerationMixin`).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

from ..errors import XATLError
from ..mixers.base import MixerContext, State
from ..mixers.registry import build_mixer
from .cache import XATLCache
from .configuration_xatl import XATLConfig
from .generation import XATLGenerationMixin, check_cache
from .layers import MLP, RMSNorm, RotaryEmbedding, make_embedding, make_norm
from .quantization import PackedLinear, empty_int8_linears

# Set by ``xatl.models`` (outside the self-contained model code): writes the model code next to saved students
# so that they load with ``trust_remote_code=True`` where xatl is not installed. None in such bundled copies.
REMOTE_CODE_WRITER = None


class XATLBlock(GradientCheckpointingLayer):
    """norm -> mixer -> residual, norm -> MLP -> residual (or both from x in parallel). (B, T, C) -> (B, T, C)

    ``norm_layout`` "post" (OLMo 2) drops the pre-norms and normalises each sublayer's output before the residual
    add (``attn_post_norm``, ``mlp_post_norm``); "sandwich" (Gemma) has both."""

    def __init__(self, config: XATLConfig, layer_idx: int):
        super().__init__()
        self.parallel_residual = config.parallel_residual
        pre, post = config.norm_layout in ("pre", "sandwich"), config.norm_layout in ("post", "sandwich")
        self.attn_norm = make_norm(config) if pre else None
        self.mixer = build_mixer(config, layer_idx)
        self.attn_post_norm = make_norm(config) if post else None
        self.mlp_norm = make_norm(config) if pre else None
        self.mlp = MLP(config)
        self.mlp_post_norm = make_norm(config) if post else None

    def forward(self, x: torch.Tensor, ctx: MixerContext, state: State | None = None, use_cache: bool = False):
        y, new_state = self.mixer(self._norm(self.attn_norm, x), ctx, state=state, use_cache=use_cache)
        y = self._norm(self.attn_post_norm, y)
        if self.parallel_residual:
            return self.mlp(self.mlp_norm(x)) + y + x, new_state
        h = x + y
        return h + self._norm(self.mlp_post_norm, self.mlp(self._norm(self.mlp_norm, h))), new_state

    @staticmethod
    def _norm(norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return x if norm is None else norm(x)


class XATLPreTrainedModel(PreTrainedModel):
    config: XATLConfig
    config_class = XATLConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["XATLBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """normal(0, initializer_range) for linear/embedding weights, zeros for biases, ones for norm weights;
        modules with parameters of their own (mixers, rotary buffers) implement ``_xatl_init``. Uses
        ``transformers.initialization`` so weights already loaded/copied are left alone."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (RMSNorm, nn.LayerNorm)):
            (init.zeros_ if getattr(module, "offset", 0.0) else init.ones_)(module.weight)   # scale 1 either way
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        if hasattr(module, "_xatl_init"):
            module._xatl_init(std)


class XATLModel(XATLPreTrainedModel):
    """The trunk: embeddings, blocks, final norm. Returns the final hidden states (B, T, C)."""

    def __init__(self, config: XATLConfig):
        super().__init__(config)
        self.embed_tokens = make_embedding(config)
        if config.position_embedding == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.rotary = RotaryEmbedding(config) if config.position_embedding == "rope" else None
        self.sliding_rotary = (RotaryEmbedding(config, config.sliding_rope_parameters)
                               if self.rotary is not None and config.sliding_rope_parameters is not None else None)
        self.layers = nn.ModuleList(XATLBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = make_norm(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: XATLCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """input_ids (B, T) or inputs_embeds (B, T, C); attention_mask (B, S + T) with 1 = token, 0 = padding."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds   # (B, T, C)
        B, T = x.shape[:2]
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError("attention_mask must be a 2-D (batch, sequence) padding mask of 1s and 0s")
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = XATLCache(self.config)
        if cache is not None:
            check_cache(cache, B)
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=x.device).unsqueeze(0).expand(B, -1)
        if self.config.position_embedding == "learned":
            x = x + self.embed_positions(position_ids)
        rope = self.rotary(x, position_ids) if self.rotary is not None else None
        ctx = MixerContext(position_ids=position_ids, rope=rope, attention_mask=attention_mask,
                           rope_at=partial(self.rotary, x) if self.rotary is not None else None)
        sliding_ctx = (dataclasses.replace(ctx, rope=self.sliding_rotary(x, position_ids),
                                           rope_at=partial(self.sliding_rotary, x))
                       if self.sliding_rotary is not None else ctx)       # Gemma 3: local layers, own RoPE base
        hidden = [x] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            state = cache.states[i] if cache is not None else None
            layer_ctx = sliding_ctx if self.config.uses_sliding_rope(i) else ctx
            x, new_state = layer(x, layer_ctx, state, use_cache)
            if use_cache:
                cache.states[i] = new_state
            if hidden is not None:
                hidden.append(x)
        if use_cache:
            cache.advance(T)
        x = self.norm(x)
        if hidden is not None:
            hidden[-1] = x
        return BaseModelOutputWithPast(last_hidden_state=x, cache=cache if use_cache else None,
                                       hidden_states=tuple(hidden) if hidden is not None else None)


class XATLForCausalLM(XATLPreTrainedModel, XATLGenerationMixin):
    """XATLModel + LM head. ``forward(..., labels)`` returns the shifted next-token cross-entropy as ``loss``.

    ``generate()`` is transformers' own, decoding with an `XATLCache`: the prompt runs once through the chunked
    form, then one recurrent step per token (the hooks are in `XATLGenerationMixin`, ``generation.py``).
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _is_stateful = True          # a recurrent state cannot be rolled back (no assisted decoding)

    def __init__(self, config: XATLConfig):
        super().__init__(config)
        self.model = XATLModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.weight_quantization == "int8":          # placeholders the checkpoint fills (``xatl quantize``)
            empty_int8_linears(self, config.quantization_keep_float)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained`` plus the model code for ``trust_remote_code`` loading."""
        if any(isinstance(m, PackedLinear) for m in self.modules()):
            raise XATLError("this model's linear layers are packed for CPU inference (oneDNN) and hold no savable "
                            "weights; save the model before packing it, or load it again from its directory")
        super().save_pretrained(save_directory, *args, **kwargs)
        if REMOTE_CODE_WRITER is not None:
            REMOTE_CODE_WRITER(save_directory)

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: XATLCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits (B, T, V) (or the last ``logits_to_keep`` positions); ``loss`` when ``labels`` (B, T) are given
        (-100 = ignored)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         inputs_embeds=inputs_embeds, use_cache=use_cache, output_hidden_states=output_hidden_states)
        h = out.last_hidden_state
        if isinstance(logits_to_keep, int):
            h = h[:, -logits_to_keep:] if logits_to_keep > 0 else h
        else:
            h = h[:, logits_to_keep]
        logits = self.lm_head(h)
        cap = self.config.final_logit_softcapping
        if cap is not None:                                   # Gemma: the same ops as transformers
            logits = torch.tanh(logits / cap) * cap
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache, hidden_states=out.hidden_states)

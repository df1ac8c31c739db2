"""Gemma 3 donors (``Gemma3ForCausalLM``, model_type ``gemma3_text``: 270M, 1B; and the text part of the
multimodal ``gemma3`` checkpoints, 4B and up, whose vision tower is left out).

What the student mirrors: embeddings times sqrt(hidden) (in the embedding dtype), RMSNorm scaling by ``1 + w``
(weights in float32), four norms per block (input, post-attention, pre- and post-feedforward: the "sandwich"
layout), GeGLU (``gelu_pytorch_tanh``), q/k RMSNorm per head before RoPE, the score scale
``query_pre_attn_scalar ** -0.5``, sliding-window layers (``layer_types``) with their own RoPE base (transformers
5.x: ``rope_parameters["sliding_attention"]``; ``rope_local_base_freq`` in older configs) and the global layers'
RoPE (``rope_parameters["full_attention"]``), and ``final_logit_softcapping``.

Softcapping is mirrored as transformers (5.x) runs Gemma 3, which is what the identity test holds the student to:
``attn_logit_softcapping`` is never applied (Gemma 3's attention does not pass it on), and
``final_logit_softcapping`` only by ``Gemma3ForCausalLM``, not by the multimodal
``Gemma3ForConditionalGeneration``. Every Gemma 3 release sets both to None.
"""

from __future__ import annotations

from ..errors import UnsupportedDonorError
from .llama import ATTENTION_WEIGHTS, QK_NORM_WEIGHTS, windowed_layers
from .spec import DonorAdapter

GEMMA3_TEXT_WEIGHTS = {
    "model.embed_tokens.weight": "embed",
    "model.layers.{}.input_layernorm.weight": "attn_norm.weight",
    **ATTENTION_WEIGHTS,
    **QK_NORM_WEIGHTS,
    "model.layers.{}.post_attention_layernorm.weight": "attn_post_norm.weight",
    "model.layers.{}.pre_feedforward_layernorm.weight": "mlp_norm.weight",
    "model.layers.{}.mlp.gate_proj.weight": "mlp.gate.weight",
    "model.layers.{}.mlp.up_proj.weight": "mlp.up.weight",
    "model.layers.{}.mlp.down_proj.weight": "mlp.down.weight",
    "model.layers.{}.post_feedforward_layernorm.weight": "mlp_post_norm.weight",
    "model.norm.weight": "final_norm.weight",
    "lm_head.weight": "lm_head.weight",
}
# Gemma3ForConditionalGeneration: the same text model under model.language_model.
GEMMA3_WEIGHTS = {k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k: v
                  for k, v in GEMMA3_TEXT_WEIGHTS.items()}
GEMMA3_UNUSED = {
    "model.vision_tower.": "the vision tower of a multimodal Gemma 3 (xatl students are text-only)",
    "model.multi_modal_projector.": "the image projector of a multimodal Gemma 3 (xatl students are text-only)",
}


def _rope(cfg, layer_type: str) -> dict:
    """The RoPE dict of ``layer_type`` ("full_attention" | "sliding_attention")."""
    params = cfg.rope_parameters or {}
    if isinstance(params.get(layer_type), dict):                        # transformers 5.x: one dict per layer type
        return dict(params[layer_type])
    if layer_type == "sliding_attention":                                # older configs: rope_local_base_freq
        return {"rope_type": "default", "rope_theta": float(getattr(cfg, "rope_local_base_freq", 10_000.0))}
    return dict(params) or {"rope_type": "default", "rope_theta": float(getattr(cfg, "rope_theta", 1_000_000.0))}


def gemma3_skeleton(cfg) -> dict:
    """Skeleton of a Gemma3TextConfig, or of the ``text_config`` of a (multimodal) Gemma3Config."""
    text = cfg.text_config if cfg.model_type == "gemma3" else cfg
    if getattr(text, "use_bidirectional_attention", False):
        raise UnsupportedDonorError("gemma3 donors with use_bidirectional_attention (embedding models) are not "
                                    "supported: xatl students are causal language models")
    windows = windowed_layers(text)
    full, local = _rope(text, "full_attention"), _rope(text, "sliding_attention")
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    bias = bool(getattr(text, "attention_bias", False))
    return dict(
        vocab_size=text.vocab_size, hidden_size=text.hidden_size, intermediate_size=text.intermediate_size,
        num_hidden_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads,
        num_key_value_heads=text.num_key_value_heads or text.num_attention_heads, head_dim=head_dim,
        norm_type="rmsnorm", norm_eps=text.rms_norm_eps, norm_bias=False, norm_offset=1.0, norm_weight_fp32=True,
        norm_layout="sandwich", mlp_type="gated", hidden_act=text.hidden_activation, mlp_bias=False,
        parallel_residual=False, position_embedding="rope", max_position_embeddings=text.max_position_embeddings,
        rope_parameters=full, sliding_rope_parameters=local if windows["sliding_window"] and local != full else None,
        attention_bias=bias, attention_out_bias=bias, attention_scale=float(text.query_pre_attn_scalar) ** -0.5,
        qk_norm="head", embed_scale=text.hidden_size**0.5,
        final_logit_softcapping=text.final_logit_softcapping if cfg.model_type == "gemma3_text" else None,
        tie_word_embeddings=bool(getattr(cfg, "tie_word_embeddings", True)),
        initializer_range=getattr(text, "initializer_range", 0.02),
        pad_token_id=text.pad_token_id, bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
        **windows,
    )


GEMMA3_TEXT = DonorAdapter(("gemma3_text",), GEMMA3_TEXT_WEIGHTS, gemma3_skeleton)
GEMMA3 = DonorAdapter(("gemma3",), GEMMA3_WEIGHTS, gemma3_skeleton, unused=GEMMA3_UNUSED)

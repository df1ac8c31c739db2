"""Llama-family donors: llama (SmolLM2, TinyLlama, Llama 2/3), mistral (sliding window), qwen2 (q/k/v bias),
qwen3 (q/k RMSNorm per head before RoPE)."""

from __future__ import annotations

from ..errors import UnsupportedDonorError
from .spec import DonorAdapter

# the attention projections as Llama-like models name them (OLMo 2 and Gemma 3 too), with their q/k norms
ATTENTION_WEIGHTS = {f"model.layers.{{}}.self_attn.{p}_proj.{kind}": f"{p}.{kind}" for p in "qkvo"
                     for kind in ("weight", "bias")}
QK_NORM_WEIGHTS = {f"model.layers.{{}}.self_attn.{p}_norm.weight": f"{p}_norm.weight" for p in "qk"}

LLAMA_WEIGHTS = {
    "model.embed_tokens.weight": "embed",
    "model.layers.{}.input_layernorm.weight": "attn_norm.weight",
    "model.layers.{}.post_attention_layernorm.weight": "mlp_norm.weight",
    **ATTENTION_WEIGHTS,
    "model.layers.{}.mlp.gate_proj.weight": "mlp.gate.weight",
    "model.layers.{}.mlp.gate_proj.bias": "mlp.gate.bias",
    "model.layers.{}.mlp.up_proj.weight": "mlp.up.weight",
    "model.layers.{}.mlp.up_proj.bias": "mlp.up.bias",
    "model.layers.{}.mlp.down_proj.weight": "mlp.down.weight",
    "model.layers.{}.mlp.down_proj.bias": "mlp.down.bias",
    "model.norm.weight": "final_norm.weight",
    "lm_head.weight": "lm_head.weight",
}
QWEN3_WEIGHTS = {**LLAMA_WEIGHTS, **QK_NORM_WEIGHTS}


def common_skeleton(cfg) -> dict:
    """The skeleton facts that Llama-like configs spell alike (RMSNorm, gated MLP, RoPE, GQA)."""
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads or cfg.num_attention_heads, head_dim=head_dim,
        norm_type="rmsnorm", norm_eps=cfg.rms_norm_eps, norm_bias=False,
        mlp_type="gated", hidden_act=cfg.hidden_act, mlp_bias=bool(getattr(cfg, "mlp_bias", False)),
        parallel_residual=False, position_embedding="rope", max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters=dict(cfg.rope_parameters), tie_word_embeddings=bool(cfg.tie_word_embeddings),
        initializer_range=getattr(cfg, "initializer_range", 0.02),
        pad_token_id=cfg.pad_token_id, bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
    )


def llama_skeleton(cfg) -> dict:
    bias = bool(getattr(cfg, "attention_bias", False))
    return {**common_skeleton(cfg), "attention_bias": bias, "attention_out_bias": bias}


def mistral_skeleton(cfg) -> dict:
    return {**common_skeleton(cfg), "attention_bias": False, "attention_out_bias": False,
            "sliding_window": getattr(cfg, "sliding_window", None), "sliding_window_layers": None}


def windowed_layers(cfg) -> dict:
    """``sliding_window`` / ``sliding_window_layers`` from the donor's ``layer_types`` (None: no windowed layer)."""
    layer_types = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
    unknown = set(layer_types) - {"full_attention", "sliding_attention"}
    if unknown:
        raise UnsupportedDonorError(f"{cfg.model_type} donor has unsupported layer types {sorted(unknown)}")
    windowed = [i for i, t in enumerate(layer_types) if t == "sliding_attention"]
    return {"sliding_window": cfg.sliding_window if windowed else None,
            "sliding_window_layers": windowed if windowed else None}


def qwen2_skeleton(cfg) -> dict:
    return {**common_skeleton(cfg), "attention_bias": True, "attention_out_bias": False, **windowed_layers(cfg)}


def qwen3_skeleton(cfg) -> dict:
    bias = bool(getattr(cfg, "attention_bias", False))
    return {**common_skeleton(cfg), "attention_bias": bias, "attention_out_bias": bias, "qk_norm": "head",
            **windowed_layers(cfg)}


LLAMA = DonorAdapter(("llama",), LLAMA_WEIGHTS, llama_skeleton)
MISTRAL = DonorAdapter(("mistral",), LLAMA_WEIGHTS, mistral_skeleton)
QWEN2 = DonorAdapter(("qwen2",), LLAMA_WEIGHTS, qwen2_skeleton)
QWEN3 = DonorAdapter(("qwen3",), QWEN3_WEIGHTS, qwen3_skeleton)

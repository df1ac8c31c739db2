"""GPT-NeoX donors (Pythia): fused per-head query_key_value, parallel residual, partial rotary, LayerNorm."""

from __future__ import annotations

from .spec import DonorAdapter, Piece, Transform


def _neox_qkv(index: int, part: str) -> Transform:
    """query_key_value rows are laid out (H, 3, D): head-major, then q|k|v. Take part ``index`` of every head."""
    def fn(t, cfg):
        H = cfg.num_attention_heads
        D = cfg.hidden_size // H
        return t.reshape(H, 3, D, *t.shape[1:])[:, index].reshape(H * D, *t.shape[1:])
    return Transform(f"neox_split_qkv[{part}]", fn)


def _fused(kind: str) -> tuple[Piece, ...]:
    return tuple(Piece(f"{p}.{kind}", _neox_qkv(i, p)) for i, p in enumerate("qkv"))


GPT_NEOX_WEIGHTS = {
    "gpt_neox.embed_in.weight": "embed",
    "gpt_neox.layers.{}.input_layernorm.weight": "attn_norm.weight",
    "gpt_neox.layers.{}.input_layernorm.bias": "attn_norm.bias",
    "gpt_neox.layers.{}.post_attention_layernorm.weight": "mlp_norm.weight",
    "gpt_neox.layers.{}.post_attention_layernorm.bias": "mlp_norm.bias",
    "gpt_neox.layers.{}.attention.query_key_value.weight": _fused("weight"),
    "gpt_neox.layers.{}.attention.query_key_value.bias": _fused("bias"),
    "gpt_neox.layers.{}.attention.dense.weight": "o.weight",
    "gpt_neox.layers.{}.attention.dense.bias": "o.bias",
    "gpt_neox.layers.{}.mlp.dense_h_to_4h.weight": "mlp.up.weight",
    "gpt_neox.layers.{}.mlp.dense_h_to_4h.bias": "mlp.up.bias",
    "gpt_neox.layers.{}.mlp.dense_4h_to_h.weight": "mlp.down.weight",
    "gpt_neox.layers.{}.mlp.dense_4h_to_h.bias": "mlp.down.bias",
    "gpt_neox.final_layer_norm.weight": "final_norm.weight",
    "gpt_neox.final_layer_norm.bias": "final_norm.bias",
    "lm_head.weight": "lm_head.weight",     # transformers >= 5 name
    "embed_out.weight": "lm_head.weight",   # transformers 4 name (Pythia checkpoints)
}


def gpt_neox_skeleton(cfg) -> dict:
    bias = bool(getattr(cfg, "attention_bias", True))
    return dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads, head_dim=cfg.hidden_size // cfg.num_attention_heads,
        norm_type="layernorm", norm_eps=cfg.layer_norm_eps, norm_bias=True,
        mlp_type="plain", hidden_act=cfg.hidden_act, mlp_bias=True,
        parallel_residual=bool(cfg.use_parallel_residual), position_embedding="rope",
        max_position_embeddings=cfg.max_position_embeddings, rope_parameters=dict(cfg.rope_parameters),
        attention_bias=bias, attention_out_bias=bias, tie_word_embeddings=bool(cfg.tie_word_embeddings),
        initializer_range=getattr(cfg, "initializer_range", 0.02),
        pad_token_id=cfg.pad_token_id, bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
    )


GPT_NEOX = DonorAdapter(("gpt_neox",), GPT_NEOX_WEIGHTS, gpt_neox_skeleton)

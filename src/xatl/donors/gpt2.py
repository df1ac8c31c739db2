"""GPT-2 donors: Conv1D (in, out) weights, fused q|k|v in c_attn, learned absolute positions, LayerNorm."""

from __future__ import annotations

from ..errors import UnsupportedDonorError
from .spec import DonorAdapter, Piece, rows_split, transposed


def _fused(kind: str) -> tuple[Piece, ...]:
    if kind == "weight":   # (C, 3C) -> transpose (3C, C) -> rows of q | k | v
        return tuple(Piece(f"{p}.weight", transposed(rows_split(3, i, ""), f"transpose+split_qkv[{p}]"))
                     for i, p in enumerate("qkv"))
    return tuple(Piece(f"{p}.bias", rows_split(3, i, f"split_qkv[{p}]")) for i, p in enumerate("qkv"))


GPT2_WEIGHTS = {
    "transformer.wte.weight": "embed",
    "transformer.wpe.weight": "pos_embed",
    "transformer.h.{}.ln_1.weight": "attn_norm.weight",
    "transformer.h.{}.ln_1.bias": "attn_norm.bias",
    "transformer.h.{}.attn.c_attn.weight": _fused("weight"),
    "transformer.h.{}.attn.c_attn.bias": _fused("bias"),
    "transformer.h.{}.attn.c_proj.weight": (Piece("o.weight", transposed()),),
    "transformer.h.{}.attn.c_proj.bias": "o.bias",
    "transformer.h.{}.ln_2.weight": "mlp_norm.weight",
    "transformer.h.{}.ln_2.bias": "mlp_norm.bias",
    "transformer.h.{}.mlp.c_fc.weight": (Piece("mlp.up.weight", transposed()),),
    "transformer.h.{}.mlp.c_fc.bias": "mlp.up.bias",
    "transformer.h.{}.mlp.c_proj.weight": (Piece("mlp.down.weight", transposed()),),
    "transformer.h.{}.mlp.c_proj.bias": "mlp.down.bias",
    "transformer.ln_f.weight": "final_norm.weight",
    "transformer.ln_f.bias": "final_norm.bias",
    "lm_head.weight": "lm_head.weight",
}


def gpt2_skeleton(cfg) -> dict:
    if getattr(cfg, "add_cross_attention", False):
        raise UnsupportedDonorError("gpt2 donors with cross-attention are not supported (decoder-only donors only)")
    C, H = cfg.n_embd, cfg.n_head
    return dict(
        vocab_size=cfg.vocab_size, hidden_size=C, intermediate_size=cfg.n_inner or 4 * C,
        num_hidden_layers=cfg.n_layer, num_attention_heads=H, num_key_value_heads=H, head_dim=C // H,
        norm_type="layernorm", norm_eps=cfg.layer_norm_epsilon, norm_bias=True,
        mlp_type="plain", hidden_act=cfg.activation_function, mlp_bias=True, parallel_residual=False,
        position_embedding="learned", max_position_embeddings=cfg.n_positions, rope_parameters=None,
        attention_bias=True, attention_out_bias=True,
        attention_scale=None if cfg.scale_attn_weights else 1.0,
        attention_scale_inverse_layer=bool(cfg.scale_attn_by_inverse_layer_idx),
        tie_word_embeddings=bool(cfg.tie_word_embeddings), initializer_range=cfg.initializer_range,
        pad_token_id=cfg.pad_token_id, bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
    )


GPT2 = DonorAdapter(("gpt2",), GPT2_WEIGHTS, gpt2_skeleton)

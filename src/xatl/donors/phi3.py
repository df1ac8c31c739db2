"""Phi-3 donors (Phi-3, Phi-3.5, Phi-4-mini): fused q|k|v in ``qkv_proj``, fused gate|up in ``gate_up_proj``,
RMSNorm, RoPE (optionally partial), one sliding window for every layer.

Phi-3's long-context ``longrope`` switches its frequencies with the sequence length; the student refuses it
(``XATLConfig`` lists the supported RoPE types), so the 128k variants are not supported, the 4k ones are.
"""

from __future__ import annotations

from .llama import common_skeleton
from .spec import DonorAdapter, Piece, Transform, rows_split


def _qkv_rows(index: int, part: str) -> Transform:
    """Rows of ``qkv_proj`` (H*D + 2*H_kv*D, C) laid out q | k | v: q has H*D rows, k and v H_kv*D each."""
    def fn(t, cfg):
        D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        q, kv = cfg.num_attention_heads * D, cfg.num_key_value_heads * D
        start = (0, q, q + kv)[index]
        return t[start:start + (q, kv, kv)[index]]
    return Transform(f"split_qkv[{part}]", fn)


PHI3_WEIGHTS = {
    "model.embed_tokens.weight": "embed",
    "model.layers.{}.input_layernorm.weight": "attn_norm.weight",
    "model.layers.{}.post_attention_layernorm.weight": "mlp_norm.weight",
    "model.layers.{}.self_attn.qkv_proj.weight": tuple(Piece(f"{p}.weight", _qkv_rows(i, p)) for i, p in enumerate("qkv")),
    "model.layers.{}.self_attn.o_proj.weight": "o.weight",
    # gate|up: the first half of the rows is the gate (``gate, up = chunk(2)``; down(up * act(gate)))
    "model.layers.{}.mlp.gate_up_proj.weight": (Piece("mlp.gate.weight", rows_split(2, 0, "split_gate_up[gate]")),
                                                Piece("mlp.up.weight", rows_split(2, 1, "split_gate_up[up]"))),
    "model.layers.{}.mlp.down_proj.weight": "mlp.down.weight",
    "model.norm.weight": "final_norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def phi3_skeleton(cfg) -> dict:
    return {**common_skeleton(cfg), "mlp_bias": False, "attention_bias": False, "attention_out_bias": False,
            "sliding_window": getattr(cfg, "sliding_window", None), "sliding_window_layers": None}


PHI3 = DonorAdapter(("phi3",), PHI3_WEIGHTS, phi3_skeleton)

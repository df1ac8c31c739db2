"""OLMo 2 donors: no pre-norms: RMSNorm of each sublayer's *output* before the residual add
(``post_attention_layernorm``, ``post_feedforward_layernorm``), q/k RMSNorm over the whole q and k projections
(before the heads are split and rotated), RMSNorm weights applied in float32.

Beware the names: OLMo 2's ``post_attention_layernorm`` normalises the attention output (the student's
``attn_post_norm``), where Llama's normalises the MLP input (``mlp_norm``).
"""

from __future__ import annotations

from .llama import ATTENTION_WEIGHTS, QK_NORM_WEIGHTS, common_skeleton
from .spec import DonorAdapter

OLMO2_WEIGHTS = {
    "model.embed_tokens.weight": "embed",
    **ATTENTION_WEIGHTS,
    **QK_NORM_WEIGHTS,
    "model.layers.{}.post_attention_layernorm.weight": "attn_post_norm.weight",
    "model.layers.{}.mlp.gate_proj.weight": "mlp.gate.weight",
    "model.layers.{}.mlp.up_proj.weight": "mlp.up.weight",
    "model.layers.{}.mlp.down_proj.weight": "mlp.down.weight",
    "model.layers.{}.post_feedforward_layernorm.weight": "mlp_post_norm.weight",
    "model.norm.weight": "final_norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def olmo2_skeleton(cfg) -> dict:
    bias = bool(getattr(cfg, "attention_bias", False))
    return {**common_skeleton(cfg), "mlp_bias": False, "attention_bias": bias, "attention_out_bias": bias,
            "norm_layout": "post", "norm_weight_fp32": True, "qk_norm": "full"}


OLMO2 = DonorAdapter(("olmo2",), OLMO2_WEIGHTS, olmo2_skeleton)

"""Student configs from donor configs, and the check that a student really mirrors its donor."""

from __future__ import annotations

from typing import Any

from ..donors.registry import get_adapter
from ..errors import TransferError
from ..models.configuration_xatl import XATLConfig

# Skeleton fields that must equal the donor's for a transfer to be meaningful.
SKELETON_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "norm_type", "norm_eps", "norm_bias", "mlp_type", "hidden_act", "mlp_bias",
    "parallel_residual", "position_embedding", "attention_bias", "attention_out_bias", "tie_word_embeddings",
    "norm_offset", "norm_weight_fp32", "norm_layout", "qk_norm", "embed_scale", "final_logit_softcapping",
)


def student_config(donor_config, mixer: str = "retention", attention_layers=(), mixer_options: dict | None = None,
                   **overrides: Any) -> XATLConfig:
    """An XATLConfig whose skeleton mirrors ``donor_config`` (any supported HF causal-LM config).

    ``attention_layers`` keep the donor's softmax attention (a hybrid); ``mixer_options`` configure ``mixer``.
    """
    skeleton = get_adapter(donor_config.model_type).skeleton(donor_config)
    skeleton.update(
        mixer=mixer, attention_layers=list(attention_layers), mixer_options=dict(mixer_options or {}),
        donor_model_type=donor_config.model_type,
        donor_name_or_path=getattr(donor_config, "_name_or_path", None) or None,
    )
    skeleton.update(overrides)
    return XATLConfig(**skeleton)


def check_skeleton(config: XATLConfig, donor_config) -> None:
    """Raise TransferError naming the first skeleton field where ``config`` differs from the donor."""
    expected = get_adapter(donor_config.model_type).skeleton(donor_config)
    for name in SKELETON_FIELDS:
        if name in expected and getattr(config, name) != expected[name]:
            raise TransferError(
                f"student config differs from the donor's skeleton in {name} ({getattr(config, name)!r} vs the "
                f"donor's {expected[name]!r}); build it with xatl.student_config(donor.config, ...)"
            )

"""XATLConfig: what is saved with a student model.

A student mirrors its donor's *skeleton* exactly (embeddings, norms, MLPs, residual layout, positions, LM head);
only the token mixer of each layer differs. The skeleton fields below are filled from the donor by the donor
adapters (``xatl.donors``); the mixer fields choose the LCI architecture.

This file is part of the self-contained model code that is also written next to saved students for
``trust_remote_code`` loading, so it imports only torch/transformers and sibling xatl model modules.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig

from .quantization import WEIGHT_QUANTIZATIONS

NORM_TYPES = ("rmsnorm", "layernorm")
NORM_LAYOUTS = ("pre", "post", "sandwich")
QK_NORMS = ("head", "full")
MLP_TYPES = ("gated", "plain")
POSITION_EMBEDDINGS = ("rope", "learned", "none")
# Rope types whose frequencies do not depend on the running sequence length (so parallel == recurrent).
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn", "proportional")


class XATLConfig(PreTrainedConfig):
    r"""Configuration of an XATL student (a decoder-only LM whose token mixers are chosen per layer).

    Skeleton (copied from the donor by `XATLConfig.from_donor`):
        vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
        num_key_value_heads (GQA; softmax layers only), head_dim.
        norm_type (`"rmsnorm"` | `"layernorm"`), norm_eps, norm_bias (LayerNorm bias).
        norm_offset (RMSNorm scales by ``norm_offset + weight``: Gemma's 1 + w; 0 = plain weight),
        norm_weight_fp32 (RMSNorm multiplies by its weight in float32 and casts after: OLMo 2, Gemma; False:
        casts, then multiplies, as Llama).
        norm_layout: `"pre"` (norm before each sublayer), `"post"` (OLMo 2: norm of each sublayer's output, before
        the residual add) or `"sandwich"` (Gemma: both).
        mlp_type (`"gated"`: down(act(gate(x)) * up(x)); `"plain"`: down(act(up(x)))), hidden_act, mlp_bias.
        parallel_residual (GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))).
        position_embedding (`"rope"` | `"learned"` | `"none"`), max_position_embeddings, rope_parameters
        (HF rope dict incl. ``partial_rotary_factor``).
        attention_bias (q/k/v bias), attention_out_bias (o bias), attention_scale (None: head_dim**-0.5),
        qk_norm (None, `"head"`: RMSNorm of q and k per head before RoPE (Qwen3, Gemma 3), `"full"`: over the
        whole q and k projections (OLMo 2)),
        attention_scale_inverse_layer (GPT-2 ``scale_attn_by_inverse_layer_idx``), sliding_window and
        sliding_window_layers (None: all layers) for donors with windowed softmax attention;
        sliding_rope_parameters (None: ``rope_parameters``): the RoPE of the sliding-window layers where it differs
        (Gemma 3's local base frequency).
        embed_scale (None: 1): token embeddings are multiplied by it, in the embedding dtype (Gemma: sqrt(hidden)).
        final_logit_softcapping (None: off): logits = cap * tanh(logits / cap).
        tie_word_embeddings, initializer_range.
        weight_quantization (None: float weights; `"int8"`: every linear layer holds int8 weights with a scale per
        output channel and quantises its input per call, see `xatl.models.quantization`; written by
        ``xatl quantize``), quantization_keep_float (the linear layers, by name or name ending, an int8 student
        holds in float, e.g. ``["down_proj"]``).

    Mixers:
        mixer: the token mixer of every layer not listed in ``attention_layers`` (see `xatl.mixers.MIXERS`).
        attention_layers: layers that keep the donor's softmax attention (hybrids). Negative indices count
            from the end; the stored list is normalised, sorted and unique.
        mixer_options: options of ``mixer`` (e.g. ``{"chunk_size": 64}``); validated by the mixer.

    Provenance: donor_model_type, donor_name_or_path.
    """

    model_type = "xatl"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 32000
    hidden_size: int = 512
    intermediate_size: int = 1376
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    head_dim: int | None = None

    norm_type: str = "rmsnorm"
    norm_eps: float = 1e-6
    norm_bias: bool = False
    norm_offset: float = 0.0
    norm_weight_fp32: bool = False
    norm_layout: str = "pre"
    mlp_type: str = "gated"
    hidden_act: str = "silu"
    mlp_bias: bool = False
    parallel_residual: bool = False

    position_embedding: str = "rope"
    max_position_embeddings: int = 2048
    rope_parameters: dict | None = None

    attention_bias: bool = False
    attention_out_bias: bool = False
    attention_scale: float | None = None
    attention_scale_inverse_layer: bool = False
    qk_norm: str | None = None
    sliding_window: int | None = None
    sliding_window_layers: list[int] | None = None
    sliding_rope_parameters: dict | None = None
    embed_scale: float | None = None
    final_logit_softcapping: float | None = None

    tie_word_embeddings: bool = False
    initializer_range: float = 0.02
    weight_quantization: str | None = None
    quantization_keep_float: list[str] | None = None
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    mixer: str = "retention"
    attention_layers: list[int] | None = None
    mixer_options: dict | None = None

    donor_model_type: str | None = None
    donor_name_or_path: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        self.attention_layers = self._normalise_layers(self.attention_layers, "attention layer")
        if self.sliding_window_layers is not None:
            self.sliding_window_layers = self._normalise_layers(self.sliding_window_layers, "sliding-window layer")
        self.mixer_options = dict(self.mixer_options or {})
        if self.position_embedding == "rope" and self.rope_parameters is None:
            self.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
        super().__post_init__(**kwargs)
        self.validate_xatl()

    # ------------------------------------------------------------------ validation
    def _normalise_layers(self, layers, what: str) -> list[int]:
        from ..errors import ConfigError

        out = set()
        n = self.num_hidden_layers
        for i in layers or []:
            if not isinstance(i, int) or isinstance(i, bool):
                raise ConfigError(f"{what} index {i!r} is not an integer")
            if not -n <= i < n:
                raise ConfigError(
                    f"{what} index {i} is out of range for a {n}-layer model; use 0..{n - 1} (or -{n}..-1 from the end)"
                )
            out.add(i % n)
        return sorted(out)

    def validate_xatl(self) -> None:
        """Check every architecture field; raise `xatl.errors.ConfigError` naming the field and the valid values."""
        from ..errors import ConfigError, choices_message
        from ..mixers.registry import MIXERS, validate_mixer_options

        for field, valid in (("norm_type", NORM_TYPES), ("mlp_type", MLP_TYPES),
                             ("position_embedding", POSITION_EMBEDDINGS), ("norm_layout", NORM_LAYOUTS)):
            if getattr(self, field) not in valid:
                raise ConfigError(choices_message(field, getattr(self, field), valid))
        if self.qk_norm is not None and self.qk_norm not in QK_NORMS:
            raise ConfigError(choices_message("qk_norm", self.qk_norm, QK_NORMS))
        if (self.norm_offset or self.norm_weight_fp32) and self.norm_type != "rmsnorm":
            raise ConfigError("norm_offset and norm_weight_fp32 apply to RMSNorm only; set norm_type='rmsnorm' or "
                              "leave them at 0 / False")
        if self.parallel_residual and self.norm_layout != "pre":
            raise ConfigError(f"parallel_residual needs norm_layout='pre' (got {self.norm_layout!r})")
        if self.final_logit_softcapping is not None and self.final_logit_softcapping <= 0:
            raise ConfigError(f"final_logit_softcapping must be > 0 or None, got {self.final_logit_softcapping}")
        if self.weight_quantization is not None and self.weight_quantization not in WEIGHT_QUANTIZATIONS:
            raise ConfigError(choices_message("weight_quantization", self.weight_quantization, WEIGHT_QUANTIZATIONS))
        if self.weight_quantization is not None and self.tie_word_embeddings:
            raise ConfigError("a quantised student has its own LM head; set tie_word_embeddings=False")
        if self.mixer not in MIXERS:
            raise ConfigError(choices_message("mixer", self.mixer, MIXERS))
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.position_embedding == "rope":
            for params in (self.rope_parameters, self.sliding_rope_parameters or {}):
                rope_type = params.get("rope_type", "default")
                if rope_type not in SUPPORTED_ROPE_TYPES:
                    raise ConfigError(
                        f"rope type {rope_type!r} is not supported (its frequencies change with sequence length); "
                        f"supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
                    )
        validate_mixer_options(self.mixer, self.mixer_options)

    # ------------------------------------------------------------------ derived
    @property
    def layer_mixers(self) -> list[str]:
        """The mixer name of every layer: ``softmax`` at ``attention_layers``, ``mixer`` elsewhere."""
        keep = set(self.attention_layers)
        return ["softmax" if i in keep else self.mixer for i in range(self.num_hidden_layers)]

    def layer_window(self, layer_idx: int) -> int | None:
        """The donor's sliding-window size for softmax attention at ``layer_idx`` (None: full causal)."""
        if self.sliding_window is None:
            return None
        if self.sliding_window_layers is None or layer_idx in self.sliding_window_layers:
            return self.sliding_window
        return None

    def uses_sliding_rope(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` takes ``sliding_rope_parameters`` (a sliding-window layer of a donor whose
        windowed layers have a RoPE of their own)."""
        return self.sliding_rope_parameters is not None and self.layer_window(layer_idx) is not None

    def options_for(self, layer_idx: int) -> dict:
        """Mixer options of layer ``layer_idx`` (softmax layers of a hybrid take no options)."""
        return dict(self.mixer_options) if self.layer_mixers[layer_idx] == self.mixer else {}

"""Donor configs of real 1B-70B models, written out here (their published config.json values), so transfer plans
are tested at real sizes on the meta device with nothing downloaded. ``PARAMETERS`` are the published parameter
counts (the text model only, for Gemma 3), a check that each config was typed in right."""

from __future__ import annotations

from transformers import AutoConfig


def _llama(**kw) -> dict:
    return dict(model_type="llama", rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False, **kw)


BIG_CONFIGS: dict[str, dict] = {
    "Llama-3-8B": _llama(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                         rope_parameters={"rope_type": "default", "rope_theta": 500000.0}),
    "Llama-3.1-70B": _llama(vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                            num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=131072,
                            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                             "original_max_position_embeddings": 8192}),
    "Qwen2.5-7B": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                       num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=False,
                       use_sliding_window=False, sliding_window=131072, max_window_layers=28,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    "Qwen3-8B": dict(model_type="qwen3", vocab_size=151936, hidden_size=4096, intermediate_size=12288,
                     num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                     max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=False,
                     attention_bias=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    "Mistral-7B": dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                       max_position_embeddings=32768, sliding_window=4096, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "Pythia-1.4B": dict(model_type="gpt_neox", vocab_size=50304, hidden_size=2048, intermediate_size=8192,
                        num_hidden_layers=24, num_attention_heads=16, rotary_pct=0.25, max_position_embeddings=2048,
                        use_parallel_residual=True, hidden_act="gelu", tie_word_embeddings=False,
                        layer_norm_eps=1e-5),
    "Gemma-3-4B": dict(model_type="gemma3_text", vocab_size=262208, hidden_size=2560, intermediate_size=10240,
                       num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                       query_pre_attn_scalar=256, sliding_window=1024, max_position_embeddings=131072,
                       rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                       layer_types=[("full_attention" if (i + 1) % 6 == 0 else "sliding_attention")
                                    for i in range(34)],
                       rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                                           "rope_theta": 1000000.0},
                                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
}

PARAMETERS = {"Llama-3-8B": 8_030_261_248, "Llama-3.1-70B": 70_553_706_496, "Qwen2.5-7B": 7_615_616_512,
              "Qwen3-8B": 8_190_735_360, "Mistral-7B": 7_241_732_096, "Pythia-1.4B": 1_414_647_808,
              "Gemma-3-4B": 3_880_263_168}


def big_config(name: str):
    """The transformers config of ``name`` (a key of BIG_CONFIGS)."""
    kw = dict(BIG_CONFIGS[name])
    return AutoConfig.for_model(kw.pop("model_type"), **kw)

"""Tiny random donors of every supported family (vocab 99, hidden 32, 2-3 layers) for fast tests."""

from __future__ import annotations

import string

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma3Config,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
)

VOCAB = 99
EOS = "<|endoftext|>"


def tiny_config(family: str, **overrides):
    common = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=128)
    if family == "llama":
        cfg = dict(common, num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   tie_word_embeddings=True, rms_norm_eps=1e-5)
        cfg.update(overrides)
        return LlamaConfig(**cfg)
    if family == "llama3":   # untied, attention+MLP biases, llama3 rope scaling
        cfg = dict(common, num_key_value_heads=1, attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
                   rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 32})
        cfg.update(overrides)
        return LlamaConfig(**cfg)
    if family == "mistral":
        cfg = dict(common, num_key_value_heads=2, sliding_window=4, tie_word_embeddings=False)
        cfg.update(overrides)
        return MistralConfig(**cfg)
    if family == "qwen2":
        cfg = dict(common, num_key_value_heads=2, tie_word_embeddings=True, use_sliding_window=True,
                   sliding_window=5, max_window_layers=1)
        cfg.update(overrides)
        return Qwen2Config(**cfg)
    if family == "qwen3":    # q/k norm per head; head_dim 16 != hidden / heads; q/k/v/o biases; one windowed layer
        cfg = dict(common, num_key_value_heads=2, head_dim=16, attention_bias=True, tie_word_embeddings=True,
                   use_sliding_window=True, sliding_window=5, max_window_layers=2)
        cfg.update(overrides)
        return Qwen3Config(**cfg)
    if family == "phi3":     # fused qkv (GQA) and gate|up, partial rotary, a window on every layer
        cfg = dict(common, num_key_value_heads=2, sliding_window=6, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})
        cfg.update(overrides)
        return Phi3Config(**cfg)
    if family == "olmo2":    # post-norms only, q/k norm over the whole (GQA) projections
        cfg = dict(common, num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=0, bos_token_id=None,
                   eos_token_id=1)
        cfg.update(overrides)
        return Olmo2Config(**cfg)
    if family in ("gemma3", "gemma3_mm"):   # sandwich norms (1 + w), scaled embeddings, local/global RoPE, softcap
        cfg = dict(common, num_key_value_heads=2, head_dim=16, sliding_window=4, query_pre_attn_scalar=12,
                   layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                   rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                    "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0}},
                   final_logit_softcapping=30.0, pad_token_id=0, eos_token_id=1, bos_token_id=2)
        cfg.update(overrides)
        if family == "gemma3":
            return Gemma3TextConfig(**cfg)
        vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      image_size=28, patch_size=14)
        return Gemma3Config(text_config=cfg, vision_config=vision, mm_tokens_per_image=4, image_token_index=1000,
                            boi_token_index=1001, eoi_token_index=1002)   # no image tokens in the text
    if family == "gpt_neox":
        cfg = dict(common, rotary_pct=0.25, use_parallel_residual=True, hidden_act="gelu")
        cfg.update(overrides)
        return GPTNeoXConfig(**cfg)
    if family == "gpt_neox_seq":
        cfg = dict(common, rotary_pct=0.5, use_parallel_residual=False, hidden_act="gelu")
        cfg.update(overrides)
        return GPTNeoXConfig(**cfg)
    if family == "gpt2":
        cfg = dict(vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, n_positions=128, n_inner=None, bos_token_id=0,
                   eos_token_id=0)
        cfg.update(overrides)
        return GPT2Config(**cfg)
    raise ValueError(family)


FAMILIES = ("llama", "llama3", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma3", "gemma3_mm", "gpt_neox",
            "gpt_neox_seq", "gpt2")


def tiny_donor(family: str, seed: int = 0, **overrides):
    """A random donor in eval mode, with non-trivial norm weights/biases so that copying them matters."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def char_tokenizer(chat_template: str | None = None):
    """Character-level fast tokenizer: EOS (id 0), <unk>, newline and the 95 printable ASCII characters (98 ids)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {EOS: 0, "<unk>": 1, "\n": 2}
    for ch in string.printable[:95]:
        vocab.setdefault(ch, len(vocab))
    assert len(vocab) <= VOCAB
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token="<unk>")
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast

"""quantize_student / save_quantized / pack_for_cpu on tiny students of every mixer: the logits stay close to
fp32, the saved student loads with from_pretrained (with xatl and through trust_remote_code), cached decoding
agrees with a re-forward, and bad input is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import xatl
from tiny import VOCAB, char_tokenizer, tiny_donor
from xatl.errors import ConfigError, XATLError
from xatl.inference import QuantizeConfig, input_absmax, pack_for_cpu, quantize_student, save_quantized
from xatl.mixers.registry import MIXERS, mixer_option_names
from xatl.models.quantization import FBGEMM_MAX_ROWS, Int8Linear, PackedLinear

DONOR = dict(tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=None)


@pytest.fixture(scope="module")
def donor():
    return tiny_donor("llama", **DONOR)


def student(donor, mixer="retention", attention_layers=()):
    options = {"chunk_size": 4} if "chunk_size" in mixer_option_names(mixer) else {}
    cfg = xatl.student_config(donor.config, mixer=mixer, attention_layers=list(attention_layers),
                              mixer_options=options)
    torch.manual_seed(0)
    return xatl.transfer(donor, cfg)[0].eval()


def ids(n=24, batch=2, seed=0):
    return torch.randint(1, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("mixer", list(MIXERS))
def test_int8_student_stays_close_to_fp32(donor, mixer):
    fp32, q = student(donor, mixer), student(donor, mixer)
    x = ids()
    quantize_student(q, "int8", calibration=[x])
    assert q.config.weight_quantization == "int8" and not q.config.tie_word_embeddings
    assert not any(type(m) is nn.Linear for m in q.modules())
    assert q.lm_head.weight_int8.dtype == torch.int8
    with torch.no_grad():
        assert rel(q(x).logits, fp32(x).logits) < 0.08    # 7-bit inputs over 32 channels: a few % per layer


@pytest.mark.parametrize("mixer,layers", [("retention", ()), ("gla", (1,)), ("mamba2", ())])
def test_int8_cached_decoding_agrees_with_a_reforward(donor, mixer, layers):
    """Decoding runs fbgemm one token at a time and the re-forward quantises its (> FBGEMM_MAX_ROWS) rows one by one:
    the same per-token scheme."""
    q = quantize_student(student(donor, mixer, layers), "int8", calibration=[ids()])
    prompt = ids(FBGEMM_MAX_ROWS, batch=1, seed=1)
    with torch.no_grad():
        out = q.generate(prompt, max_new_tokens=6, do_sample=False, output_scores=True,
                         return_dict_in_generate=True)
        full = q(out.sequences).logits[:, prompt.shape[1] - 1:-1]            # the re-forward's next-token logits
    stepped = torch.stack(out.scores, 1)
    assert rel(stepped, full) < 0.03


def test_int8_student_saves_and_loads_with_from_pretrained(donor, tmp_path):
    from transformers import AutoModelForCausalLM

    q = quantize_student(student(donor, "retention", (1,)), "int8", calibration=[ids()])
    xatl.save_student(q, tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["weight_quantization"] == "int8" and cfg["tie_word_embeddings"] is False
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "s").eval()
    assert isinstance(loaded.lm_head, Int8Linear)
    x = ids()
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, q(x).logits)


def test_int8_student_is_smaller(donor):
    from xatl.inference.quantize import tensor_bytes

    fp32 = student(donor)
    before = tensor_bytes(fp32)
    linear = sum(m.weight.numel() * 4 for m in fp32.modules() if type(m) is nn.Linear)
    q = quantize_student(fp32, "int8")
    assert tensor_bytes(q) < before - linear / 2          # the linear weights shrink about 4x (the head is untied)


def test_calibration_records_every_linear_input(donor):
    s = student(donor, "gla")
    stats = input_absmax(s, [ids()])
    linears = {n for n, m in s.named_modules() if type(m) is nn.Linear}
    assert set(stats) == linears
    assert all(v.shape == (s.get_submodule(n).in_features,) and (v > 0).all() for n, v in stats.items())
    assert not any(m._forward_pre_hooks for m in s.modules())                # the hooks are gone


def test_bf16_student_keeps_fp32_states(donor):
    q = quantize_student(student(donor, "retention"), "bf16")
    assert all(p.dtype == torch.bfloat16 for p in q.parameters())
    with torch.no_grad():
        out = q(ids(), use_cache=True)
    assert all(t.dtype == torch.float32 for s in out.cache.states if s for k, t in s.items() if k == "kv")


def test_refusals(donor):
    with pytest.raises(ConfigError, match="choose one of"):
        quantize_student(student(donor), "int4")
    q = quantize_student(student(donor), "int8")
    with pytest.raises(ConfigError, match="already quantised"):
        quantize_student(q, "int8")
    with pytest.raises(ConfigError, match="not a LlamaForCausalLM|XATL student"):
        quantize_student(donor, "int8")
    with pytest.raises(ConfigError, match="alpha"):
        quantize_student(student(donor), "int8", alpha=2.0)
    with pytest.raises(ConfigError, match="alpha must be in"):
        QuantizeConfig(alpha=-1)


def test_save_quantized_writes_atomically_and_refuses_a_donor(donor, tmp_path):
    src = tmp_path / "fp32"
    xatl.save_student(student(donor), src, tokenizer=char_tokenizer())
    r = save_quantized(src, tmp_path / "int8", QuantizeConfig(calibration_blocks=0))
    assert r.to == "int8" and r.bytes_after < r.bytes_before and (tmp_path / "int8" / "tokenizer.json").exists()
    before = (tmp_path / "int8" / "model.safetensors").read_bytes()
    with pytest.raises(XATLError, match="already holds a model; pass --overwrite"):
        save_quantized(src, tmp_path / "int8", QuantizeConfig(to="bf16", calibration_blocks=0))
    assert (tmp_path / "int8" / "model.safetensors").read_bytes() == before
    donor.save_pretrained(tmp_path / "donor")
    char_tokenizer().save_pretrained(tmp_path / "donor")
    with pytest.raises(ConfigError, match="not an XATL student"):
        save_quantized(tmp_path / "donor", tmp_path / "out", QuantizeConfig(calibration_blocks=0))
    assert not (tmp_path / "out").exists()


def test_pack_for_cpu_decodes_like_the_unpacked_model_and_refuses_to_save(donor, tmp_path):
    ref, packed = student(donor, "gla", (1,)), pack_for_cpu(student(donor, "gla", (1,)))
    assert not any(type(m) is nn.Linear for m in packed.modules())
    assert any(isinstance(m, PackedLinear) for m in packed.modules())
    prompt = ids(9, batch=1, seed=2)
    with torch.no_grad():
        assert rel(packed(ids()).logits, ref(ids()).logits) < 1e-5
        a = ref.generate(prompt, max_new_tokens=6, do_sample=False)
        b = packed.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b)
    with pytest.raises(XATLError, match="packed for CPU inference"):
        packed.save_pretrained(tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_pack_for_cpu_refuses_bf16_in_one_line_where_onednn_cannot_pack_it(donor, monkeypatch):
    import xatl.inference.quantize as q

    model = quantize_student(student(donor, "gla", (1,)), "bf16")
    monkeypatch.setattr(q, "bf16_packing_supported", lambda: False)      # an AVX2-only CPU
    with pytest.raises(ConfigError, match="cannot pack bf16 weights") as e:
        pack_for_cpu(model)
    assert "\n" not in str(e.value)
    assert not any(isinstance(m, PackedLinear) for m in model.modules())          # nothing half-replaced


def test_layers_kept_in_float_save_and_load(donor, tmp_path):
    from transformers import AutoModelForCausalLM

    q = quantize_student(student(donor, "gla"), "int8", calibration=[ids()], keep_float=["down_proj", "lm_head"])
    kept = {n for n, m in q.named_modules() if type(m) is nn.Linear}
    assert kept and all(n.endswith(("mlp.down_proj", "lm_head")) for n in kept)
    assert q.config.quantization_keep_float == ["down_proj", "lm_head"]
    xatl.save_student(q, tmp_path / "s")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "s").eval()
    assert {n for n, m in loaded.named_modules() if type(m) is nn.Linear} == kept
    x = ids()
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, q(x).logits)
    with pytest.raises(ConfigError, match="nothing left to quantise"):
        quantize_student(student(donor), "int8", keep_float=["q_proj", "k_proj", "v_proj", "o_proj", "g_proj",
                                                            "gate_proj", "up_proj", "down_proj", "lm_head"])


def test_a_quantised_student_is_never_quantised_again(donor):
    for first in ("bf16", "int8"):
        q = quantize_student(student(donor), first)
        assert q.config.quantized_to == first
        for again in ("bf16", "int8"):
            with pytest.raises(ConfigError, match=rf"already quantised \({first}\); quantise the float student"):
                quantize_student(q, again)


def test_an_unknown_keep_float_name_is_refused_before_anything_changes(donor):
    s = student(donor, "gla")
    before = {n: p.clone() for n, p in s.state_dict().items()}
    with pytest.raises(ConfigError, match="keep_float 'down_porj' matches no linear layer.*did you mean 'down_proj'"):
        quantize_student(s, "int8", keep_float=["down_porj"])
    assert s.config.weight_quantization is None and s.config.tie_word_embeddings
    assert s.state_dict().keys() == before.keys() and all(torch.equal(p, before[n]) for n, p in s.state_dict().items())

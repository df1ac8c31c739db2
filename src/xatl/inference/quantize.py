"""Quantised students (``xatl quantize``) and oneDNN-packed linear layers for CPU decoding.

    model = quantize_student(XATLForCausalLM.from_pretrained(d), "int8", calibration=batches)   # in place
    save_quantized("students/smol-ret", "students/smol-ret-int8", QuantizeConfig(to="int8"))  # = xatl quantize
    pack_for_cpu(model)                                             # faster fp32/bf16 decode, inference only

``int8``: every linear layer (mixer projections and gates, MLP, LM head) but the ``keep_float`` ones (``xatl
quantize``'s default: the MLPs' ``down_proj``) becomes an `Int8Linear` (int8 weights, one scale per output channel,
8-bit inputs per call), smoothed SmoothQuant-style by the largest input of each channel over a few calibration
blocks (`input_absmax`; without them real LMs lose most of their quality: SmolLM2's held-out perplexity goes from
20.6 to 91.7 on 5 documents). The LM head is untied from the embedding first (the embedding stays in fp32: a step
reads one row of it). Norms, convolutions, decays and recurrent states keep their precision.
``bf16``: every floating-point weight in bfloat16; the mixers keep their recurrent states in fp32.
Either way the config records the target in ``quantized_to`` (int8 students also in ``weight_quantization``, which
their loading reads), and a quantised student is never quantised again.
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..models.modeling_xatl import XATLForCausalLM
from ..models.quantization import Int8Linear, PackedLinear, bf16_packing_supported, keeps_float, replace_linears
from ..utils.remote_code import reraise_refusal
from .config import QUANTIZE_TARGETS, QuantizeConfig

QUANTIZED_FIELD = "quantized_to"
"""The config attribute ``quantize_student`` sets to its target ("int8" or "bf16"): how a quantised student is told
from a float one (a bf16 student's ``dtype`` alone is not: a float student may be saved in bf16 too)."""


@dataclass
class QuantizeResult:
    path: Path
    to: str
    linear_layers: int          # the linear layers actually quantised (int8: not the keep_float ones)
    bytes_before: int
    bytes_after: int
    seconds: float


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers (shared tensors once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


@torch.no_grad()
def input_absmax(model: nn.Module, batches) -> dict[str, torch.Tensor]:
    """{name of each ``nn.Linear``: max |input| per input channel (in_features,)} over ``batches`` of token ids
    (each (B, T)), from forward pre-hooks on a float model."""
    stats: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, args):
            a = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
            stats[name] = a if name not in stats else torch.maximum(stats[name], a)
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules() if type(m) is nn.Linear]
    try:
        device = next(model.parameters()).device
        for ids in batches:
            model(input_ids=ids.to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return stats


def quantized_as(config) -> str | None:
    """The target ("int8", "bf16") a student with this config was quantised to by `quantize_student`; None: float."""
    return getattr(config, QUANTIZED_FIELD, None) or getattr(config, "weight_quantization", None)


def int8_layers(model: nn.Module, keep_float=()) -> list[str]:
    """Names of the ``nn.Linear`` layers an int8 quantisation with ``keep_float`` (names or name endings; "none":
    none) turns into `Int8Linear`. Refuses, before any work, a keep_float name that matches no linear layer (a typo
    would silently quantise the layer meant to stay float) and a keep_float that leaves nothing to quantise."""
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    keep = [k for k in keep_float if k and k != "none"]
    endings = sorted({n.rsplit(".", 1)[-1] for n in linears})
    for k in keep:
        if not any(keeps_float(n, [k]) for n in linears):
            close = difflib.get_close_matches(k.rsplit(".", 1)[-1], endings, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"keep_float {k!r} matches no linear layer of this student{hint}; give a layer name or "
                              f"name ending ({', '.join(endings[:12])}{', ...' if len(endings) > 12 else ''}) or none")
    quantised = [n for n in linears if not keeps_float(n, keep)]
    if not quantised:
        raise ConfigError(f"keep_float {keep} keeps every linear layer in float: nothing left to quantise")
    return quantised


def quantize_student(model: XATLForCausalLM, to: str, calibration=None, alpha: float = 0.5,
                     keep_float=()) -> XATLForCausalLM:
    """Quantise an XATL student in place to ``to`` ("int8" or "bf16") and record it in its config; returns it.

    calibration: token-id batches ((B, T) each) whose activations smooth the int8 layers (`input_absmax`; None:
    no smoothing); alpha: SmoothQuant's migration strength in [0, 1] (0: none, 1: all of the outliers into the
    weights; 0.5, SmoothQuant's default, measured best of 0.3-0.8 on SmolLM2, docs/benchmarks.md); keep_float:
    int8 only, the linear layers left in float (names or name endings, e.g. ["down_proj"])."""
    if to not in QUANTIZE_TARGETS:
        raise ConfigError(f"cannot quantise to {to!r}; choose one of: {', '.join(QUANTIZE_TARGETS)}")
    if not isinstance(model, XATLForCausalLM):
        raise ConfigError(f"xatl quantize takes an XATL student, not a {type(model).__name__}; convert the donor "
                          "first (xatl convert)")
    if quantized_as(model.config) is not None:
        raise ConfigError(f"this student is already quantised ({quantized_as(model.config)}); quantise the float "
                          "student it came from instead")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    if to == "bf16":
        model.to(torch.bfloat16)
        model.config.dtype = torch.bfloat16
        setattr(model.config, QUANTIZED_FIELD, "bf16")
        return model
    int8_layers(model, keep_float)                  # refuses an unknown keep_float name before anything changes
    model.float()
    if model.config.tie_word_embeddings or model.lm_head.weight is model.model.embed_tokens.weight:
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
        model.config.tie_word_embeddings = False
    stats = input_absmax(model, calibration) if calibration is not None else {}
    names = {id(m): n for n, m in model.named_modules()}
    keep = [k for k in keep_float if k and k != "none"]
    replace_linears(model, lambda lin: Int8Linear.from_linear(lin, stats.get(names[id(lin)]), alpha), keep)
    model.config.weight_quantization = "int8"
    setattr(model.config, QUANTIZED_FIELD, "int8")
    model.config.quantization_keep_float = keep or None
    model.config.dtype = torch.float32
    return model


def calibration_batches(cfg: QuantizeConfig, tokenizer, batch_size: int = 4) -> list[torch.Tensor]:
    """``cfg.calibration_blocks`` training blocks of ``cfg.calibration_block_size`` tokens, spread evenly over the
    training split of ``cfg.calibration_data`` (never the held-out documents), as (B, T) id batches."""
    from ..data import DataConfig, build_lm_dataset

    if cfg.calibration_blocks == 0:
        return []
    blocks = build_lm_dataset(DataConfig(sources=cfg.calibration_data, block_size=cfg.calibration_block_size),
                              tokenizer)["train"]
    n = min(cfg.calibration_blocks, len(blocks))
    rows = torch.linspace(0, len(blocks) - 1, n).long().tolist()
    ids = torch.tensor([blocks[i]["input_ids"] for i in rows])
    return list(ids.split(batch_size))


def save_quantized(model_dir: str | os.PathLike, out: str | os.PathLike, cfg: QuantizeConfig | None = None, *,
                   overwrite: bool = False) -> QuantizeResult:
    """Load the student in ``model_dir``, quantise it as ``cfg`` says and write it (with its tokenizer) to ``out``
    atomically: a failure leaves ``out`` as it was. Refused before any work: an ``out`` that is, lies inside or
    contains the input model's directory, an already quantised student, a donor, a keep_float name that matches
    no layer."""
    from transformers import AutoTokenizer

    from ..eval.loading import load_weights, resolve_causal_lm
    from ..transfer.convert import save_student
    from ..utils.fs import check_not_input, check_output_dir

    cfg = QuantizeConfig() if cfg is None else cfg
    t0 = time.perf_counter()
    src, config = resolve_causal_lm(model_dir)
    check_not_input(out, src.path, "--model")
    out = check_output_dir(out, overwrite)
    if quantized_as(config) is not None:
        raise ConfigError(f"{str(model_dir)!r} is already quantised ({quantized_as(config)}); quantise the float "
                          "student it came from instead")
    model = load_weights(src, torch.float32, config=config).eval()
    if not isinstance(model, XATLForCausalLM):
        raise ConfigError(f"{str(model_dir)!r} holds a {type(model).__name__}, not an XATL student; convert it first "
                          "(xatl convert --donor ... --out ...), then quantise the student")
    if cfg.to == "int8":
        int8_layers(model, cfg.keep_float)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.path, **src.kwargs)
    except Exception as e:
        reraise_refusal(str(model_dir), e, ConfigError)
        raise ConfigError(f"{str(model_dir)!r} has no loadable tokenizer ({type(e).__name__}); a quantised student "
                          "is saved with its tokenizer: save it beside the weights") from None
    before = tensor_bytes(model)
    calibration = calibration_batches(cfg, tokenizer) if cfg.to == "int8" else None
    quantize_student(model, cfg.to, calibration=calibration, alpha=cfg.alpha, keep_float=cfg.keep_float)
    quantised = Int8Linear if cfg.to == "int8" else nn.Linear      # bf16: every linear layer, in bfloat16
    n = sum(1 for m in model.modules() if type(m) is quantised)
    save_student(model, out, tokenizer=tokenizer, overwrite=overwrite)
    return QuantizeResult(Path(out), cfg.to, n, before, tensor_bytes(model), time.perf_counter() - t0)


def pack_for_cpu(model: nn.Module) -> nn.Module:
    """Reorder every fp32/bf16 ``nn.Linear`` of ``model`` into oneDNN's blocked layout (`PackedLinear`), in place, for
    faster decoding on CPU. Inference only: the model cannot train or be saved afterwards (load it again for that).
    Logits move by float rounding (a different summation order), about 1e-5 of their scale."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ConfigError("pack_for_cpu packs weights for the CPU; move the model to the CPU first (or leave it "
                          "unpacked on a GPU)")
    if not torch.backends.mkldnn.is_available():
        raise ConfigError("this torch build has no oneDNN (mkldnn); decode unpacked")
    if not bf16_packing_supported() and any(type(m) is nn.Linear and m.weight.dtype == torch.bfloat16
                                            for m in model.modules()):
        raise ConfigError("this CPU cannot pack bf16 weights (oneDNN needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT); "
                          "decode the bf16 model unpacked, or pack a float32 copy")
    model.eval()
    replace_linears(model, PackedLinear)
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = {}       # a packed head is a copy: nothing to re-tie
    return model

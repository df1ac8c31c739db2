"""Checks of a model around the loading of its weights, each returning the one-line problem (None: nothing wrong).

* :func:`size_problem`: a config whose sizes are zero, negative, not whole numbers, or beyond any real model;
* :func:`layer_count_problem`: a config that names more layers than its checkpoint holds (read from the
  safetensors headers, before anything is allocated; fewer are the loader's unexpected tensors, unless the model
  ignores them, as multi-token-prediction layers are);
* :func:`loading_problem`: tensors the checkpoint lacks, holds in excess, or holds in another shape;
* :func:`dtype_problem`: floating-point weights stored as integers (cast silently by transformers);
* :func:`nonfinite_problem`: NaN or infinite weights.

Loaders turn them into their own error type (:func:`xatl.donors.load.load_checked`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 1024),
    "n_layer": (1, 1024),
    "hidden_size": (1, 1 << 17),
    "n_embd": (1, 1 << 17),
    "num_attention_heads": (1, 1 << 12),
    "n_head": (1, 1 << 12),
    "num_key_value_heads": (1, 1 << 12),
    "head_dim": (1, 1 << 12),
    "intermediate_size": (1, 1 << 20),
    "n_inner": (1, 1 << 20),
    "vocab_size": (1, 1 << 24),
    "max_position_embeddings": (1, 1 << 24),
    "n_positions": (1, 1 << 24),
}
"""Config field -> (smallest, largest) accepted. The largest public models stay far inside (Llama-3.1-405B: 126
layers, hidden 16,384, vocab 128,256; Gemma 3: vocab 262,144)."""

INTEGER_DTYPES = frozenset({"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64"})
"""safetensors' integer dtypes (int8 weights of a quantised student are integer in the model too: not refused)."""
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


def size_problem(config, where: str) -> str | None:
    """The first size field of ``config`` (and of its text config, for multimodal ones) outside ``SIZE_LIMITS``."""
    configs = [config]
    try:
        text = config.get_text_config(decoder=True)
    except (AttributeError, TypeError, ValueError):      # no text config, or several (an encoder-decoder)
        text = None
    if text is not None and text is not config:
        configs.append(text)
    for cfg in configs:
        for field, (low, high) in SIZE_LIMITS.items():
            value = getattr(cfg, field, None)
            for v in (value if isinstance(value, (list, tuple)) else [value]):    # per-layer sizes (Gemma 3n)
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, int):
                    return f"{where}: config field {field} = {v!r} is not a whole number; fix config.json"
                if not low <= v <= high:
                    bound = f"at least {low}" if v < low else f"at most {high:,} (no real model is larger)"
                    return f"{where}: config field {field} = {v:,} must be {bound}; fix config.json"
    return None


def invalid_config(err: BaseException, where: str) -> str | None:
    """The one line for transformers refusing a config field (its strict dataclass validation), else None."""
    if not type(err).__name__.startswith("StrictDataclass"):
        return None
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = lines[-1].split(": ", 1)[-1] if lines else type(err).__name__
    return f"{where}: config.json is invalid ({detail}); fix config.json"


def checkpoint_dtypes(path: str | os.PathLike) -> dict[str, str] | None:
    """{tensor name: safetensors dtype ("F32", "BF16", "I64", ...)} of the safetensors checkpoint of model directory
    ``path``, from the file headers alone (None: no safetensors checkpoint, or headers that cannot be read; the
    loader then reports it)."""
    d = Path(path)
    index = d / "model.safetensors.index.json"
    try:
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        elif (d / "model.safetensors").is_file():
            shards = ["model.safetensors"]
        else:
            return None
        out: dict[str, str] = {}
        for shard in shards:
            header = _header(d / shard)
            if header is None:
                return None
            out.update({k: v["dtype"] for k, v in header.items() if k != "__metadata__"})
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _header(file: Path) -> dict | None:
    with open(file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 0 < n <= min(file.stat().st_size - 8, 100 << 20):
            return None
        return json.loads(f.read(n))


def layer_count_problem(config, stored: dict[str, str] | None, where: str) -> str | None:
    """A config naming more layers than its checkpoint holds (``stored``: :func:`checkpoint_dtypes`)."""
    layers = {int(m.group(1)) for n in stored or () if (m := _LAYER_INDEX.search(n))}
    field = "num_hidden_layers" if hasattr(config, "num_hidden_layers") else "n_layer"
    declared = getattr(config, field, None)
    if not layers or not isinstance(declared, int) or declared <= len(layers):
        return None           # more layers than declared: extra ones (a multi-token-prediction head) are the loader's
    return (f"{where}: config.json says {field} = {declared:,} but the checkpoint holds {len(layers)} layers; fix "
            "config.json or re-save the model")


def loading_problem(info: dict, where: str) -> str | None:
    """Tensors missing from, unexpected in, or of another shape in the checkpoint (``output_loading_info``)."""
    for key, what in (("missing_keys", "lacks"), ("unexpected_keys", "holds unexpected"),
                      ("mismatched_keys", "holds wrongly shaped")):
        names = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or ())
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            return (f"{where}: the checkpoint {what} tensors ({shown}) for its config; re-save or re-convert the "
                    "model (its weights and config.json disagree)")
    return None


def dtype_problem(model, stored: dict[str, str] | None, where: str) -> str | None:
    """A floating-point tensor of ``model`` that its checkpoint stores as integers (``stored``:
    :func:`checkpoint_dtypes`): transformers would cast it silently."""
    if not stored:
        return None
    state = model.state_dict()
    for name, dtype in sorted(stored.items()):
        if dtype in INTEGER_DTYPES and name in state and state[name].is_floating_point():
            return (f"{where}: tensor {name!r} is stored as {dtype} where the model needs floating point; re-save the "
                    "model with float weights")
    return None


def nonfinite_problem(model, where: str) -> str | None:
    """The first floating-point tensor of ``model`` holding NaN or infinite values."""
    import torch

    bad = []
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            bad.append(name)
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return (f"{where}: tensor {bad[0]!r} holds NaN or inf values{more}; the model is damaged: re-save it, re-fetch "
            "it or use an earlier checkpoint")

"""Checkpoints: ``out_dir/checkpoints/step-N/``, written atomically (temp directory, then rename), keep-last-k.

    step-N/model/               save_pretrained (+ tokenizer, transfer_report.json): loads with from_pretrained
    step-N/adapter.safetensors  LoRA runs only: the adapters (model/ then holds the weights under them)
    step-N/optimizer.safetensors optimizer state (the current stage's AdamW)
    step-N/rng.safetensors      python / numpy / torch (/ cuda) RNG states, one per process

Optimizer and RNG states are stored with :mod:`xatl.utils.tensor_tree` (tensors plus a JSON skeleton): resuming
never unpickles anything, so a planted file in a run directory cannot execute code.
    step-N/trainer_state.json   step, stage, data position, freeze state, schedule state, config hash, ... (last)

A checkpoint directory appears only once complete, so a crash or a full disk mid-write leaves the previous one
as it was; a leftover temporary directory is ignored (and removed by the next successful save).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import TrainingError
from ..utils.fs import atomic_directory, atomic_write_json
from ..utils.tensor_tree import TreeError, load_tree, save_tree

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / CHECKPOINTS


def list_checkpoints(out_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a trainer_state.json), oldest first."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def read_state(path: str | os.PathLike) -> dict:
    try:
        return json.loads((Path(path) / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise TrainingError(f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}); delete it to resume "
                            "from the one before") from None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_write_error(e: BaseException) -> bool:
    """True for a failure to write files (a full disk, a read-only mount): an OSError, or safetensors' own error
    type, which wraps the OS error of a failed write (``SafetensorError: ... No space left on device``)."""
    if isinstance(e, OSError):
        return True
    try:
        from safetensors import SafetensorError
    except ImportError:  # older safetensors
        return False
    return isinstance(e, SafetensorError)


def save_checkpoint(path: Path, *, save_model, optimizer_state: dict, rng_states: list, state: dict,
                    adapters: dict | None = None) -> Path:
    """Write one checkpoint atomically. ``save_model(dir)`` writes the loadable model into ``dir``."""
    with atomic_directory(path, overwrite=True) as tmp:
        save_model(tmp / "model")
        if adapters:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in adapters.items()}, str(tmp / "adapter.safetensors"))
        save_tree(optimizer_state, tmp / OPTIMIZER_FILE)
        save_tree(rng_states, tmp / RNG_FILE)
        atomic_write_json(tmp / STATE_FILE, state)
    return path


def load_training_files(path: Path) -> tuple[dict, list, dict | None]:
    """(optimizer state, per-process RNG states, LoRA adapters or None) of a checkpoint."""
    if not (path / OPTIMIZER_FILE).is_file() and (path / "optimizer.pt").is_file():
        raise TrainingError(f"checkpoint {str(path)!r} is in the old pickle format (optimizer.pt), which xatl no "
                            "longer loads because unpickling can run code; resume it with xatl <= 0.1.0 or start a "
                            "new --out")
    try:
        optimizer = load_tree(path / OPTIMIZER_FILE)
        rngs = load_tree(path / RNG_FILE)
        adapters = None
        if (path / "adapter.safetensors").is_file():
            from safetensors.torch import load_file

            adapters = load_file(str(path / "adapter.safetensors"))
    except (OSError, RuntimeError, EOFError, TreeError) as e:
        raise TrainingError(f"checkpoint {str(path)!r} is damaged ({type(e).__name__}); delete it to resume from "
                            "the one before") from None
    return optimizer, rngs, adapters


def prune_checkpoints(out_dir: str | os.PathLike, keep_last: int, protect: set[Path] = frozenset()) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (never those in ``protect``), and stale temp dirs."""
    found = list_checkpoints(out_dir)
    keep = {p for _, p in found[-keep_last:]} | {Path(p) for p in protect}
    for _, p in found:
        if p not in keep:
            shutil.rmtree(p, ignore_errors=True)
    root = checkpoint_root(out_dir)
    for p in root.glob(".step-*.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


def check_compatible(state: dict, expected: dict, path: Path) -> None:
    """Refuse to resume from a checkpoint of another model, other data or other trajectory settings."""
    if state.get("model_sha256") != expected["model_sha256"]:
        raise TrainingError(f"checkpoint {str(path)!r} was trained from another model ({state.get('model_path')!r}, "
                            f"weights sha256 {str(state.get('model_sha256'))[:12]}...), not {expected['model_path']!r}; "
                            "pass the same --model, or a new --out to start a fresh run")
    if state.get("data_fingerprint") != expected["data_fingerprint"]:
        raise TrainingError(f"checkpoint {str(path)!r} was trained on other data; resume with the same data, or "
                            "use a new --out")
    if state.get("global_batch") != expected["global_batch"]:
        raise TrainingError(f"checkpoint {str(path)!r} used a global batch of {state.get('global_batch')} blocks, "
                            f"this run {expected['global_batch']} (micro_batch_size * grad_accum * processes); "
                            "keep them equal to resume")
    if state.get("config_hash") != expected["config_hash"]:
        old, new = state.get("trajectory", {}), expected["trajectory"]
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise TrainingError(f"checkpoint {str(path)!r} was made with other training settings ({', '.join(diff)}); "
                            "resume with the same settings, or use a new --out")

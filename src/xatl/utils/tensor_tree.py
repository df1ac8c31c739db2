"""Nested Python state (optimizer and RNG states) stored as one safetensors file, without pickle.

A tree of dicts, lists, tuples, tensors, numpy arrays and JSON scalars is split into its tensors (safetensors
payload, keys ``"0"``, ``"1"``, ...) and a JSON skeleton kept in the file's metadata under ``"xatl_tree"``.
Loading parses JSON and raw tensor bytes only, so a planted file can at worst fail to load: it can never run
code (unlike a pickle-based checkpoint, whose loading can construct arbitrary objects).

    save_tree({"state": {0: {"step": torch.tensor(3.0)}}, "lr": 1e-3}, "optimizer.safetensors")
    tree = load_tree("optimizer.safetensors")          # the same structure; int keys stay ints

Skeleton nodes: ``{"d": [[key, node], ...]}`` (dict; keys are JSON str/int/float/bool/None), ``{"l": [...]}``
(list), ``{"t": [...]}`` (tuple), ``{"T": i}`` (torch tensor i), ``{"N": i, "dtype": str}`` (numpy array i) and
``{"v": x}`` (a JSON scalar).
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

META_KEY = "xatl_tree"
FORMAT = 1


class TreeError(ValueError):
    """The tree holds a type that cannot be stored, or the file is not a tree written by :func:`save_tree`."""


def _encode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous()
        return {"T": key}
    if isinstance(obj, np.ndarray):
        key = str(len(tensors))
        arr = obj.astype(np.int64) if obj.dtype == np.uint32 else obj   # safetensors has no portable uint32
        tensors[key] = torch.from_numpy(np.ascontiguousarray(arr)).clone()
        return {"N": key, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TreeError(f"dict key {k!r} of type {type(k).__name__} cannot be stored")
        return {"d": [[k, _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, list):
        return {"l": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, tuple):
        return {"t": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, np.generic):
        return {"v": obj.item()}
    if isinstance(obj, (str, int, float, bool, type(None))):
        return {"v": obj}
    raise TreeError(f"a value of type {type(obj).__name__} cannot be stored")


def _decode(node, tensors: dict[str, torch.Tensor]):
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise TreeError("malformed skeleton node")
    if "T" in node:
        return tensors[node["T"]]
    if "N" in node:
        return tensors[node["N"]].numpy().astype(np.dtype(node["dtype"]))
    if "d" in node:
        return {k: _decode(v, tensors) for k, v in node["d"]}
    if "l" in node:
        return [_decode(v, tensors) for v in node["l"]]
    if "t" in node:
        return tuple(_decode(v, tensors) for v in node["t"])
    if "v" in node:
        return node["v"]
    raise TreeError(f"unknown skeleton node {sorted(node)}")


def save_tree(tree, path: str | os.PathLike) -> None:
    """Write ``tree`` to ``path`` (safetensors). TreeError for a type outside the tree's vocabulary."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors)
    save_file(tensors, os.fspath(path), metadata={META_KEY: json.dumps({"format": FORMAT, "tree": skeleton})})


def load_tree(path: str | os.PathLike):
    """Read a tree written by :func:`save_tree`. TreeError when the file is not one (never executes anything)."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            meta = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except OSError:
        raise
    except Exception as e:   # safetensors raises SafetensorError / others for a file that is not safetensors
        raise TreeError(f"not a safetensors file ({type(e).__name__})") from None
    if meta is None:
        raise TreeError(f"no {META_KEY!r} metadata")
    try:
        payload = json.loads(meta)
        if payload.get("format") != FORMAT:
            raise TreeError(f"tree format {payload.get('format')!r}, expected {FORMAT}")
        return _decode(payload["tree"], tensors)
    except TreeError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TreeError(f"malformed tree metadata ({type(e).__name__})") from None

"""Write the student's model code next to a saved student, flattened into one folder, so that
``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`` works where xatl is not installed.

The closure of ``configuration_xatl`` and ``modeling_xatl`` inside the xatl package is collected by following
relative imports; each module becomes one file (``xatl_mixers_base.py`` ...) and its relative imports are
rewritten to point at the flattened siblings, which is what transformers' dynamic-module loader understands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..utils.fs import atomic_write_bytes, atomic_write_json

PACKAGE_ROOT = Path(__file__).resolve().parents[1]          # .../src/xatl
ENTRY_MODULES = ("xatl.models.configuration_xatl", "xatl.models.modeling_xatl")
AUTO_MAP = {"AutoConfig": "configuration_xatl.XATLConfig", "AutoModelForCausalLM": "modeling_xatl.XATLForCausalLM"}
_IMPORT = re.compile(r"^(?P<indent>\s*)from\s+(?P<rel>\.+[\w.]*)\s+import\s+(?P<rest>.*)$")


def _path_of(module: str) -> Path:
    rel = module.split(".")[1:]
    p = PACKAGE_ROOT.joinpath(*rel)
    if (p / "__init__.py").exists():
        raise ValueError(f"model code must import modules, not packages ({module}); import from a module file")
    return p.with_suffix(".py")


def _resolve(current: str, rel: str) -> str:
    dots = len(rel) - len(rel.lstrip("."))
    base = current.split(".")[:-dots]
    tail = rel.lstrip(".")
    return ".".join(base + ([tail] if tail else []))


def _flat_name(module: str) -> str:
    last = module.rsplit(".", 1)[-1]
    if module in ENTRY_MODULES:
        return last
    return "xatl_" + "_".join(module.split(".")[1:])


def collect_sources() -> dict[str, str]:
    """{flat file name: rewritten source} for the model-code closure."""
    todo, seen, out = list(ENTRY_MODULES), set(), {}
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        lines = []
        for line in _path_of(mod).read_text().splitlines():
            m = _IMPORT.match(line)
            if m:
                target = _resolve(mod, m.group("rel"))
                todo.append(target)
                line = f"{m.group('indent')}from .{_flat_name(target)} import {m.group('rest')}"
            lines.append(line)
        out[_flat_name(mod) + ".py"] = "\n".join(lines) + "\n"
    return out


def write_remote_code(save_directory) -> None:
    """Write the flattened model code into ``save_directory`` and add ``auto_map`` to its config.json."""
    d = Path(save_directory)
    for name, source in collect_sources().items():
        atomic_write_bytes(d / name, source.encode())
    cfg_path = d / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["auto_map"] = AUTO_MAP
    atomic_write_json(cfg_path, cfg)

"""Command-line flags generated from a settings dataclass (``xatl train``, ``xatl heal``), so that a setting, its
default, its range and its help live in one place: the dataclass field (:mod:`xatl.utils.settings`).

Each field becomes ``--field-name`` (metadata ``flag`` renames it, ``flag=None`` leaves it out), in the argument
group its metadata names, with the help from its docstring and the default from the field. A nested settings
dataclass (``align: AlignConfig``) becomes prefixed flags (``--align-steps``). By type:

* ``int``, ``float``, ``str`` (``| None``: ``none`` gives None); metadata ``choices`` restrict a string;
* ``bool`` defaulting to False: ``--flag``; defaulting to True: ``--no-flag``;
* ``bool | str`` ("auto"): ``--flag auto|on|off``, or with metadata ``switch`` the pair ``--flag`` / ``--no-flag``;
* ``list[int]``, ``list[str]``, ``tuple[int, ...]``: one or more values; ``tuple[float, float]``: two values.

    add_flags(parser, TrainConfig)
    cfg = TrainConfig(**flag_values(args, TrainConfig))

A command passes ``overrides`` ({field: argparse keywords}) for a field that needs its own parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import MISSING

from ..utils.settings import default_of, field_docs
from .types import bool_or_auto, optional


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "none"
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value)


def _fields(cls, only):
    return [f for f in dataclasses.fields(cls) if (only is None or f.name in only)
            and not ("flag" in f.metadata and f.metadata["flag"] is None)]


def add_flags(parser: argparse.ArgumentParser, cls, overrides: dict | None = None, prefix: str = "",
              group: str | None = None, groups: dict | None = None, only=None) -> None:
    """Add a flag for every field of settings dataclass ``cls`` (or those named in ``only``) to ``parser``, see
    the module docstring. ``overrides[field]`` are argparse keywords: with ``type`` or ``action`` they replace the
    parser inferred from the type, otherwise they adjust it (``flag`` renames the flag, ``show`` formats the
    default for the help)."""
    overrides = overrides or {}
    groups = {} if groups is None else groups
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in _fields(cls, only):
        meta = f.metadata
        where = meta.get("group", group)
        if where is not None and where not in groups:
            groups[where] = parser.add_argument_group(where)
        target = parser if where is None else groups[where]
        hint, default = hints[f.name], default_of(f)
        if dataclasses.is_dataclass(hint):
            add_flags(parser, hint, overrides, f"{prefix}{f.name}_", where, groups)
            continue
        own = dict(overrides.get(f.name, {}))
        flag = own.pop("flag", None) or meta.get("flag") or "--" + f"{prefix}{f.name}".replace("_", "-")
        dest = f"{prefix}{f.name}"
        required = default is MISSING
        show = own.pop("show", _show)
        shown = None if required or default is None else show(default)
        help_text = docs[f.name] + (f" (default: {shown})" if shown else "")
        kw = {"dest": dest, "help": help_text.replace("%", "%%")}
        if required:
            kw["required"] = True
        else:
            kw["default"] = default
        args = typing.get_args(hint)
        base = next((t for t in args if t is not type(None)), hint) if args else hint
        origin = typing.get_origin(hint)
        if "type" in own or "action" in own:        # the command's own parser for this field
            kw.update(own)
        elif hint is bool:
            if default is True:
                flag = "--no-" + flag[2:]
                kw.update(action="store_false", help=f"turn off: {docs[f.name]}".replace("%", "%%"))
            else:
                kw.update(action="store_true")
        elif set(args) == {bool, str} and meta.get("switch"):
            pair = target.add_mutually_exclusive_group()
            pair.add_argument(flag, action="store_const", const=True, **kw)
            pair.add_argument("--no-" + flag[2:], dest=dest, action="store_const", const=False,
                              help=f"the opposite of {flag}")
            continue
        elif set(args) == {bool, str}:
            kw.update(type=bool_or_auto, metavar="{auto,on,off}")
        elif origin is list or hint is list:
            kw.update(nargs="+", type=args[0] if args else str, metavar=f.name.upper().rstrip("S") or "VALUE")
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:          # tuple[int, ...]
            kw.update(nargs="+", type=args[0], metavar=f.name.upper().rstrip("S") or "VALUE")
        elif origin is tuple:
            kw.update(nargs=len(args), type=args[0], metavar=tuple(f"{f.name.upper()}{i + 1}"
                                                                   for i in range(len(args))))
        elif base in (int, float, str):
            kw["type"] = optional(base) if type(None) in args and base is not str else base
            if "choices" in meta:
                kw["choices"] = meta["choices"]
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {hint!r}; give it an override or flag=None")
        target.add_argument(flag, **{**kw, **own})


def flag_values(args: argparse.Namespace, cls, prefix: str = "", only=None) -> dict:
    """The keyword arguments of ``cls`` (nested settings as their dataclasses) from flags added by ``add_flags``."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in _fields(cls, only):
        if dataclasses.is_dataclass(hints[f.name]):
            out[f.name] = hints[f.name](**flag_values(args, hints[f.name], f"{prefix}{f.name}_"))
        else:
            out[f.name] = getattr(args, f"{prefix}{f.name}")
    return out

"""Settings dataclasses as the one source of truth: a field's help is its docstring, its valid range is its metadata.

A settings class documents each field with an attribute docstring (the string right after it, as PEP 257 and
Sphinx read it) and states its range beside it::

    @dataclass
    class TrainConfig:
        max_steps: int = setting(1000, min=1, flag="--steps")
        \"\"\"Optimizer steps of the LM stage.\"\"\"

``field_docs`` reads those docstrings (for generated command-line flags and docs), ``range_problem`` checks a value
against the field's range. Range keys: ``min`` (>=), ``above`` (>), ``max`` (<=), ``below`` (<), ``choices``, ``whole`` (an integer).
Other metadata keys (``flag``, ``group``) are for the command-line generator, :mod:`xatl.cli.flags`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import textwrap
from dataclasses import MISSING

RANGE_KEYS = ("min", "above", "max", "below", "choices", "whole")


def setting(default=MISSING, *, factory=MISSING, **metadata):
    """A dataclass field with ``metadata`` (a range, a flag name, a group); a list or dict default is copied."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def default_of(f: dataclasses.Field):
    """The field's default value (a fresh one from its factory), or MISSING for a required field."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """{field name: help}: the ``help`` metadata where given, else the attribute docstring, whitespace collapsed
    and reST ``literals`` unquoted (inherited fields included)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_attribute_docstrings(klass))
    out = {}
    for f in dataclasses.fields(cls):
        text = f.metadata.get("help") or docs.get(f.name, "")
        out[f.name] = re.sub(r"``([^`]*)``", r"\1", " ".join(text.split()))
    return out


def _attribute_docstrings(klass) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):          # no source (a frozen build): no docstrings, the fields still work
        return {}
    body = ast.parse(source).body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = after.value.value
    return docs


def describe_range(meta) -> str:
    """The range of a field's metadata in words, e.g. ``>= 1``, ``> 0``, ``in [0, 1)``, ``one of: a, b``."""
    if "choices" in meta:
        return "one of: " + ", ".join(map(str, meta["choices"]))
    whole = "a whole number " if meta.get("whole") else ""
    low = (f"[{meta['min']}", meta["min"]) if "min" in meta else (f"({meta['above']}", meta["above"]) \
        if "above" in meta else None
    high = (f"{meta['max']}]", meta["max"]) if "max" in meta else (f"{meta['below']})", meta["below"]) \
        if "below" in meta else None
    if low and high:
        return f"{whole}in {low[0]}, {high[0]}"
    if low:
        return f"{whole}{'>=' if 'min' in meta else '>'} {low[1]}"
    if high:
        return f"{whole}{'<=' if 'max' in meta else '<'} {high[1]}"
    return whole.strip()


def range_problem(f: dataclasses.Field, value, name: str | None = None) -> str | None:
    """``must be <range>, got <value>`` when ``value`` is outside the field's range (None: inside, or no range),
    or with ``name``: ``<name> must be ...`` / ``unknown <name> <value>; choose one of: ...``. None values pass:
    whether None is allowed is the type's business."""
    meta = f.metadata
    if value is None or not any(k in meta for k in RANGE_KEYS):
        return None
    if "choices" in meta:
        if value in meta["choices"]:
            return None
        listed = ", ".join(map(str, meta["choices"]))
        return f"unknown {name} {value!r}; choose one of: {listed}" if name else \
            f"must be one of: {listed}, got {value!r}"
    if meta.get("whole") and (isinstance(value, bool) or not isinstance(value, int)):
        ok = False
    else:
        try:
            ok = (("min" not in meta or value >= meta["min"]) and ("above" not in meta or value > meta["above"])
                  and ("max" not in meta or value <= meta["max"]) and ("below" not in meta or value < meta["below"]))
        except TypeError:
            ok = False
    if ok:
        return None
    return f"{name + ' ' if name else ''}must be {describe_range(meta)}, got {value!r}"


def check_ranges(obj, prefix: str = "") -> str | None:
    """The first problem (``<field> must be ..., got ...``) among ``obj``'s fields, nested settings included, or
    None."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            problem = check_ranges(value, f"{prefix}{f.name}.")
        else:
            problem = range_problem(f, value, f"{prefix}{f.name}")
        if problem:
            return problem
    return None

"""Read, validate and resolve recipes: YAML -> :class:`~xatl.experiment.schema.Recipe`.

Every refusal is one ``ConfigError`` line naming the recipe and the dotted path of the bad field, e.g.
``recipe my.yaml: students[2].copy: unknown component 'attn'; choose from: embed, norms, ...``.

    recipe = load_recipe()                                   # the embedded default
    recipe = load_recipe("smollm2", preset="cpu")            # an embedded recipe with a preset applied
    recipe = load_recipe("my.yaml", sets=["train.max_steps=50"])

The schema's dataclasses are the only source of what a recipe may say: types from their annotations, ranges from
their field metadata (:mod:`xatl.utils.settings`). The converter below is written here rather than taken from
OmegaConf's structured configs or pydantic, weighed on 2026-12-01: OmegaConf 2.3 does not take the schema's unions
(``bool | str``) and reports a bad key without a did-you-mean; pydantic would turn every schema class into a
pydantic model (a second dataclass flavour beside transformers' and TrainConfig) for what is about 100 lines here,
with the one-line ``students[2].copy: ...`` errors the tests hold.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import difflib
import re
import types
import typing
from importlib import resources
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..eval.long.config import LongContextConfig
from ..eval.suite import LONG_TASKS
from ..utils.settings import range_problem
from .schema import GROUPS, Recipe, TrainSpec

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
COPY_WORDS = ("all", "default", "none")

class _Bad(Exception):
    """A validation failure at a dotted path (turned into one ConfigError line by ``parse_recipe``)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)


# ------------------------------------------------------------------------------------------------- typed reading

def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp, value, path: str):
    """``value`` (parsed YAML) as type ``tp``, or raise _Bad naming ``path``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise _Bad(path, f"expected a list, got {_show(value)}")
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _Bad(path, f"expected a mapping, got {_show(value)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _Bad(path, f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(path, f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, str):        # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(path, f"expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Bad(path, f"expected a string, got {_show(value)}")
        return value
    raise TypeError(f"recipe schema type {tp!r} at {path} is not supported by the loader")


def _show(value) -> str:
    return "nothing (null)" if value is None else f"{type(value).__name__} {value!r}"[:80]


def from_dict(cls, data, path: str = ""):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys, missing required keys and wrong types."""
    if not isinstance(data, dict):
        raise _Bad(path, f"expected a mapping of {cls.__name__} fields, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _Bad(_join(path, str(key)), f"unknown key; {hint}valid keys: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        where = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Bad(where, "required key is missing")
            continue
        value = _convert(hints[name], data[name], where)
        problem = range_problem(f, value)           # the field's range is its metadata, beside it in the schema
        if problem:
            raise _Bad(where, problem)
        kwargs[name] = value
    return cls(**kwargs)


# ------------------------------------------------------------------------------------------------ semantic checks

def validate(recipe: Recipe) -> None:
    """Checks across fields (names, mixers, copy sets, schedules, tasks); raises _Bad with the dotted path."""
    if not NAME_RE.match(recipe.name):
        raise _Bad("name", f"{recipe.name!r} is not a valid run name (letters, digits, '.', '-', '_')")
    if recipe.tokenizer.source not in ("train", "donor"):
        raise _Bad("tokenizer.source", f"unknown source {recipe.tokenizer.source!r}; choose one of: donor, train")
    if recipe.tokenizer.source == "donor" and recipe.donor.source == "scratch":
        raise _Bad("tokenizer.source", "a donor trained from scratch has no tokenizer of its own; use 'train'")
    arch = recipe.donor.architecture
    if recipe.donor.source == "scratch" and arch.hidden_size % arch.num_attention_heads:
        raise _Bad("donor.architecture.hidden_size", f"{arch.hidden_size} is not a multiple of "
                   f"num_attention_heads ({arch.num_attention_heads})")
    if arch.num_key_value_heads and arch.num_attention_heads % arch.num_key_value_heads:
        raise _Bad("donor.architecture.num_key_value_heads", "must divide num_attention_heads")
    _validate_train(recipe.train, "train")
    if recipe.donor.source == "scratch":
        _validate_train(recipe.donor.train, "donor.train")
    if not recipe.students:
        raise _Bad("students", "no student given; list at least the main XATL student and the scratch baseline")
    seen: set[str] = set()
    for i, s in enumerate(recipe.students):
        _validate_student(recipe, s, f"students[{i}]")
        if s.name in seen:
            raise _Bad(f"students[{i}].name", f"{s.name!r} is used twice; student names must be unique")
        seen.add(s.name)
    _validate_report(recipe)
    from ..eval.suite import parse_tasks

    for i, t in enumerate(recipe.eval.tasks):
        try:
            parse_tasks([t])
        except ConfigError as e:
            raise _Bad(f"eval.tasks[{i}]", str(e)) from None
        if t in LONG_TASKS:
            raise _Bad(f"eval.tasks[{i}]", f"{t} is a long-context task; list it in long_context.tasks")
    for i, name in enumerate(recipe.eval.suite_students or []):
        if recipe.student(name) is None:
            raise _Bad(f"eval.suite_students[{i}]", f"no student named {name!r}; students: "
                       f"{', '.join(s.name for s in recipe.students)}")
    _validate_long(recipe)
    for i, c in enumerate(recipe.profile.contexts):
        if c < 1:
            raise _Bad(f"profile.contexts[{i}]", f"must be >= 1, got {c}")
    for i, text in enumerate(recipe.prompts.texts):
        if not text.strip():
            raise _Bad(f"prompts.texts[{i}]", "is empty; give some text to continue")


def _validate_long(recipe: Recipe) -> None:
    """long_context: known long-context tasks, known students, settings LongContextConfig accepts."""
    spec = recipe.long_context
    for i, t in enumerate(spec.tasks):
        if t not in LONG_TASKS:
            raise _Bad(f"long_context.tasks[{i}]", f"unknown long-context task {t!r}; choose from: "
                       f"{', '.join(LONG_TASKS)}")
    for key in ("students", "retrieval_students"):
        for i, name in enumerate((getattr(spec, key) or []) if spec.enabled else []):   # a preset may drop them
            if recipe.student(name) is None:
                raise _Bad(f"long_context.{key}[{i}]", f"no student named {name!r}; students: "
                           f"{', '.join(s.name for s in recipe.students)}")
    known = [f.name for f in dataclasses.fields(LongContextConfig)]
    for key in spec.settings:
        if key not in known:
            raise _Bad(f"long_context.settings.{key}", f"unknown setting; valid: {', '.join(known)}")
    try:
        spec.config()
    except (ConfigError, TypeError, ValueError) as e:
        raise _Bad("long_context.settings", str(e)) from None


# TrainConfig fields a recipe sets through TrainSpec (its fields are TrainConfig's) or per run (not allowed again
# in ``options``)
SET_BY_RECIPE = (*(f.name for f in dataclasses.fields(TrainSpec) if f.name != "options"),
                 "model", "out_dir", "seed", "freeze", "unfreeze", "resume")


def _validate_train(spec, path: str) -> None:
    import dataclasses as dc

    from ..train import TrainConfig

    if spec.warmup_steps > spec.max_steps:
        raise _Bad(f"{path}.warmup_steps", f"{spec.warmup_steps} is more than max_steps ({spec.max_steps})")
    valid = [f.name for f in dc.fields(TrainConfig) if f.name not in SET_BY_RECIPE and f.name != "data"]
    for key in spec.options:
        if key not in valid:
            why = "is set by the recipe itself" if key in SET_BY_RECIPE else "is not a TrainConfig field"
            raise _Bad(f"{path}.options.{key}", f"{why}; options may set: {', '.join(valid)}")


def _validate_student(recipe: Recipe, s, path: str) -> None:
    from ..donors.spec import COMPONENTS
    from ..mixers.registry import MIXERS, validate_mixer_options
    from ..train.schedule import parse_unfreeze

    if not NAME_RE.match(s.name):
        raise _Bad(f"{path}.name", f"{s.name!r} is not a valid name (letters, digits, '.', '-', '_')")
    if not s.mixers:
        raise _Bad(f"{path}.mixers", "no mixer given")
    for j, m in enumerate(s.mixers):
        if m not in MIXERS:
            raise _Bad(f"{path}.mixers[{j}]", f"unknown mixer {m!r}; choose one of: {', '.join(sorted(MIXERS))}")
        try:
            validate_mixer_options(m, s.mixer_options)
        except ConfigError as e:
            raise _Bad(f"{path}.mixer_options", str(e)) from None
    for word in (w.strip() for w in s.copy.split(",")):
        if word not in COMPONENTS and word not in COPY_WORDS:
            raise _Bad(f"{path}.copy", f"unknown component {word!r}; choose from: {', '.join(COMPONENTS)} "
                       f"(or {', '.join(COPY_WORDS)})")
    try:
        parse_unfreeze(s.unfreeze)
    except ConfigError as e:
        raise _Bad(f"{path}.unfreeze", str(e)) from None
    if s.group not in GROUPS:
        raise _Bad(f"{path}.group", f"unknown group {s.group!r}; choose one of: {', '.join(GROUPS)}")
    if not s.seeds or len(set(s.seeds)) != len(s.seeds):
        raise _Bad(f"{path}.seeds", "give one or more distinct seeds")
    for j, lr in enumerate(s.lr_sweep):
        if not lr > 0:
            raise _Bad(f"{path}.lr_sweep[{j}]", f"must be > 0, got {lr!r}")
    if s.lr_sweep and (s.lr is not None or len(set(s.lr_sweep)) != len(s.lr_sweep)):
        raise _Bad(f"{path}.lr_sweep", "give distinct rates, and no lr beside them (the sweep picks it)")
    if s.train:
        if "lr" in s.train:
            raise _Bad(f"{path}.train.lr", "set the student's lr (or lr_sweep) instead")
        merged = {**dataclasses.asdict(recipe.train), **recipe.train_changes(s)}
        _validate_train(from_dict(TrainSpec, merged, f"{path}.train"), f"{path}.train")
    if s.heal is not None:
        from .healing import check_heal_spec

        bad = check_heal_spec(s)
        if bad:
            raise _Bad(f"{path}.{bad[0]}", bad[1])
    layers = recipe.donor.architecture.num_hidden_layers if recipe.donor.source == "scratch" else None
    for j, layer in enumerate(s.attention_layers):
        if layers is not None and not -layers <= layer < layers:
            raise _Bad(f"{path}.attention_layers[{j}]", f"layer {layer} does not exist in a {layers}-layer donor")


def _validate_report(recipe: Recipe) -> None:
    main, base = recipe.student(recipe.report.main), recipe.student(recipe.report.baseline)
    names = ", ".join(s.name for s in recipe.students)
    if main is None:
        raise _Bad("report.main", f"no student named {recipe.report.main!r}; students: {names}")
    if base is None:
        raise _Bad("report.baseline", f"no student named {recipe.report.baseline!r}; students: {names}")
    if base.heal is not None:
        raise _Bad(f"students[{recipe.students.index(base)}].heal", f"the baseline {base.name!r} must be trained "
                   "from scratch with the plain recipe; remove heal")
    if base.copy.strip() != "none":
        raise _Bad(f"students[{recipe.students.index(base)}].copy",
                   f"the baseline {base.name!r} must be trained from scratch (copy: none)")
    missing = [m for m in main.mixers if m not in base.mixers]
    if missing:
        raise _Bad(f"students[{recipe.students.index(base)}].mixers",
                   f"the baseline lacks {', '.join(missing)}: every mixer of {main.name!r} needs a scratch run")


# ----------------------------------------------------------------------------------------- files, presets, --set

def embedded_dir() -> Path:
    return Path(str(resources.files("xatl").joinpath("recipes")))


def embedded_recipes() -> list[str]:
    """Names of the recipes shipped with xatl (``xatl run NAME``)."""
    return sorted(p.stem for p in embedded_dir().glob("*.yaml"))


def locate(name_or_path: str | None) -> Path:
    """A recipe file: a path, or the name of an embedded recipe (None: ``default``)."""
    if name_or_path is None:
        name_or_path = "default"
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    embedded = embedded_dir() / f"{name_or_path}.yaml"
    if "/" not in str(name_or_path) and embedded.is_file():
        return embedded
    raise ConfigError(f"no recipe {str(name_or_path)!r}: not a file and not an embedded recipe "
                      f"({', '.join(embedded_recipes())})")


def apply_set(raw: dict, assignment: str) -> None:
    """Apply ``dotted.path[i].key=YAML`` to the raw recipe mapping, in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.max_steps=50")
    value = yaml.safe_load(text) if text.strip() else None
    parts = [p for p in re.split(r"\.|(\[\d+\])", key.strip()) if p]
    node = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        index = int(part[1:-1]) if part.startswith("[") else None
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                raise ConfigError(f"--set {key}: {''.join(parts[:i + 1])} does not exist")
            if last:
                node[index] = value
            node = node[index]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not inside a mapping")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {} if not parts[i + 1].startswith("[") else [])


def merge(base: dict, override: dict) -> dict:
    """Deep-merge mappings (lists and scalars of ``override`` replace those of ``base``)."""
    out = _copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _copy.deepcopy(value)
    return out


def parse_recipe(raw, where: str = "recipe", preset: str | None = None, sets=()) -> Recipe:
    """Validate a raw mapping (parsed YAML) into a Recipe; ``preset`` and ``sets`` are applied first."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of recipe fields at the top level, got {_show(raw)}")
    raw = _copy.deepcopy(raw)
    if preset is not None:
        presets = raw.get("presets") or {}
        if preset not in presets:
            raise ConfigError(f"{where}: no preset {preset!r}; presets: {', '.join(presets) or '(none)'}")
        if not isinstance(presets[preset], dict):
            raise ConfigError(f"{where}: presets.{preset}: expected a mapping of recipe fields")
        raw = merge(raw, presets[preset])
        raw["name"] = f"{raw.get('name', 'recipe')}-{preset}"
    for assignment in sets:
        apply_set(raw, assignment)
    try:
        recipe = from_dict(Recipe, raw)
        validate(recipe)
    except _Bad as e:
        raise ConfigError(f"{where}: {e}") from None
    return recipe


def load_recipe(name_or_path: str | None = None, preset: str | None = None, sets=()) -> Recipe:
    """Read a recipe file or embedded recipe (None: ``default``); refuse unknown keys and bad values."""
    path = locate(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"recipe {path.name}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                          "save the file as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"recipe {path.name}: cannot be read ({e.strerror or e}); check the path and its "
                          "permissions") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"recipe {path.name}: not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    if isinstance(raw, dict):
        raw.setdefault("name", path.stem)
    return parse_recipe(raw, f"recipe {path.name}", preset=preset, sets=sets)


def recipe_to_dict(recipe: Recipe) -> dict:
    """The resolved recipe as plain data (presets dropped: they are already applied or not asked for)."""
    out = dataclasses.asdict(recipe)
    out.pop("presets", None)
    return out

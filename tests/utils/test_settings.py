"""Settings dataclasses: help from attribute docstrings, ranges from field metadata."""

from dataclasses import dataclass, fields

import pytest

from xatl.utils.settings import check_ranges, default_of, describe_range, field_docs, range_problem, setting


@dataclass
class Knobs:
    steps: int = setting(10, min=1, whole=True)
    """Optimizer ``steps``
    of the run."""
    rate: float = setting(0.5, above=0, below=1)
    mode: str = setting("fast", choices=("fast", "slow"), help="how to run")
    names: list[str] = setting(["a"])
    """Names."""


def _field(name):
    return next(f for f in fields(Knobs) if f.name == name)


def test_docs_come_from_docstrings_or_help_metadata():
    docs = field_docs(Knobs)
    assert docs == {"steps": "Optimizer steps of the run.", "rate": "", "mode": "how to run", "names": "Names."}


def test_ranges_are_described_and_checked():
    assert describe_range(_field("steps").metadata) == "a whole number >= 1"
    assert describe_range(_field("rate").metadata) == "in (0, 1)"
    assert range_problem(_field("steps"), 0) == "must be a whole number >= 1, got 0"
    assert range_problem(_field("steps"), 2.0, "steps") == "steps must be a whole number >= 1, got 2.0"
    assert range_problem(_field("steps"), True) is not None           # a bool is not a step count
    assert range_problem(_field("rate"), 1.0) == "must be in (0, 1), got 1.0"
    assert range_problem(_field("rate"), 0.25) is None and range_problem(_field("rate"), None) is None
    assert range_problem(_field("mode"), "warp", "mode") == "unknown mode 'warp'; choose one of: fast, slow"
    assert range_problem(_field("rate"), "x") == "must be in (0, 1), got 'x'"


def test_check_ranges_names_the_first_bad_field_nested_too():
    @dataclass
    class Outer:
        inner: Knobs = setting(factory=Knobs)
        top: int = setting(3, min=0)

    assert check_ranges(Outer()) is None
    assert check_ranges(Outer(top=-1)) == "top must be >= 0, got -1"
    assert check_ranges(Outer(inner=Knobs(rate=2.0))) == "inner.rate must be in (0, 1), got 2.0"


def test_list_defaults_are_fresh_copies():
    a, b = Knobs(), Knobs()
    a.names.append("b")
    assert b.names == ["a"] and default_of(_field("names")) == ["a"]


@pytest.mark.parametrize("cls_path", ["xatl.train.config:TrainConfig", "xatl.heal.config:HealConfig",
                                      "xatl.experiment.schema:TrainSpec", "xatl.experiment.schema:Recipe",
                                      "xatl.experiment.schema:LongContextSpec", "xatl.eval.long.config:LongContextConfig"])
def test_every_setting_is_documented(cls_path):
    import importlib

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    undocumented = [k for k, v in field_docs(cls).items() if not v]
    allowed = {"Recipe": {"students", "description", "tokenizer", "data", "donor", "eval", "profile", "prompts",
                          "report"}}.get(name, set())
    assert set(undocumented) <= allowed, undocumented

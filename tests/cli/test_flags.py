"""Flags generated from settings dataclasses: `xatl train` documents every TrainConfig field with its default."""

import argparse
import re
from dataclasses import MISSING, dataclass, fields

import pytest

from xatl.cli.flags import add_flags, flag_values
from xatl.cli.main import build_parser
from xatl.train.config import TrainConfig
from xatl.utils.settings import default_of, field_docs, setting


def _flag_of(f, prefix=""):
    flag = f.metadata.get("flag") or "--" + f"{prefix}{f.name}".replace("_", "-")
    return "--no-" + flag[2:] if default_of(f) is True else flag


def _train_fields():
    for f in fields(TrainConfig):
        if f.name == "data":
            continue
        if f.name in ("align", "kd", "lora"):
            for g in fields(type(default_of(f))):
                yield g, _flag_of(g, f"{f.name}_"), field_docs(type(default_of(f)))[g.name]
        else:
            yield f, _flag_of(f), field_docs(TrainConfig)[f.name]


def test_train_help_documents_every_field_with_its_default():
    parser = build_parser("train")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    text = " ".join(sub.format_help().split())
    actions = {s: a for a in sub._actions for s in a.option_strings}
    for f, flag, doc in _train_fields():
        assert flag in actions, f"TrainConfig.{f.name} has no flag {flag}"
        help_text = " ".join(actions[flag].help.replace("%%", "%").split()).removeprefix("turn off: ")
        assert help_text.startswith(" ".join(doc.split())[:40]), (flag, help_text)
        default = default_of(f)
        if default is MISSING:
            assert actions[flag].required
        elif default is not None and not isinstance(default, bool):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            assert f"(default: {shown or 'none'})" in help_text, (flag, help_text)
    assert re.search(r"--steps MAX_STEPS\s+Optimizer steps of the LM stage", text)


def test_parsed_defaults_are_the_dataclass_defaults():
    from xatl.cli.train import config_from_args

    args = build_parser("train").parse_args(["train", "--model", "m", "--out", "o"])
    cfg, dataset = config_from_args(args)
    assert dataset is None and cfg.data.sources == ["default"] and cfg.data.block_size == 512
    reference = TrainConfig(model="m", out_dir="o", data=cfg.data)
    assert cfg == reference


def test_flags_reach_nested_and_odd_typed_fields():
    from xatl.cli.train import config_from_args

    args = build_parser("train").parse_args([
        "train", "--model", "m", "--out", "o", "--steps", "7", "--lora-rank", "4", "--lora-dropout", "0.1",
        "--align-warmup-steps", "none", "--betas", "0.8", "0.9", "--eval-at", "1", "3", "--bf16", "off",
        "--no-resume", "--no-tensorboard", "--warmup-steps", "none", "--unfreeze-lr", "3e-4", "--freeze", "none"])
    cfg, _ = config_from_args(args)
    assert (cfg.max_steps, cfg.lora.rank, cfg.lora.dropout, cfg.align.warmup_steps) == (7, 4, 0.1, None)
    assert (cfg.betas, cfg.eval_at, cfg.bf16, cfg.resume, cfg.tensorboard) == ((0.8, 0.9), [1, 3], False, False, False)
    assert (cfg.warmup_steps, cfg.unfreeze_lr, cfg.freeze) == (None, 3e-4, "none")


def test_a_bad_value_is_refused_from_the_range_beside_the_field(capsys):
    from xatl.cli.main import main

    assert main(["train", "--model", "m", "--out", "o", "--min-lr", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "xatl train: error: min_lr must be in [0, 1], got 2.0"


def test_a_new_setting_is_one_field():
    """What adding a setting costs: its field (default, range, docstring) in the dataclass; the flag, its help and
    default, the parsing and the range check follow."""

    @dataclass
    class Extended(TrainConfig):
        adam_eps: float = setting(1e-8, above=0, group="optimisation")
        """AdamW epsilon."""

    parser = argparse.ArgumentParser()
    add_flags(parser, Extended)
    flag = next(a for a in parser._actions if "--adam-eps" in a.option_strings)
    assert flag.help == "AdamW epsilon. (default: 1e-08)" and flag.default == 1e-8
    args = parser.parse_args(["--model", "m", "--out", "o", "--adam-eps", "1e-6"])
    assert Extended(**flag_values(args, Extended)).adam_eps == 1e-6
    from xatl.errors import ConfigError

    with pytest.raises(ConfigError, match="adam_eps must be > 0, got 0.0"):
        Extended(**flag_values(parser.parse_args(["--model", "m", "--out", "o", "--adam-eps", "0"]), Extended))


def test_a_type_without_a_flag_rule_is_a_clear_error():
    @dataclass
    class Odd:
        mapping: dict = setting({})
        """A mapping."""

    with pytest.raises(TypeError, match="Odd.mapping: no flag for type"):
        add_flags(argparse.ArgumentParser(), Odd)

"""Recipes: the embedded ones load; unknown keys and bad values are refused with the dotted path of the field."""

from __future__ import annotations

import copy

import pytest
from experiment_helpers import tiny_raw

from xatl.cli.main import main
from xatl.errors import ConfigError
from xatl.experiment import embedded_recipes, load_recipe, parse_recipe
from xatl.heal.config import long_context_options


def _refused(raw: dict) -> str:
    with pytest.raises(ConfigError) as e:
        parse_recipe(raw, "recipe t.yaml")
    return str(e.value)


def test_tiny_recipe_parses_into_runs():
    recipe = parse_recipe(tiny_raw())
    assert recipe.train.max_steps == 12 and recipe.donor.architecture.hidden_size == 32
    ids = [r.id for r in recipe.runs()]
    assert ids[:4] == ["retention-xatl-s0", "gla-xatl-s0", "retention-scratch-s0", "gla-scratch-s0"]
    assert "retention-frozen-s1" in ids and len(ids) == len(set(ids)) == 8


def test_embedded_recipes_load():
    assert {"default", "toy", "smollm2"} <= set(embedded_recipes())
    toy = load_recipe("toy")
    assert toy.name == "toy" and toy.donor.source == "scratch"
    assert set(toy.student("xatl").mixers) >= {"retention", "gla", "mamba"}
    assert toy.student("scratch").copy == "none"
    groups = {s.group for s in toy.students}
    assert {"main", "transfer", "hybrid", "freeze"} <= groups
    smol = load_recipe("smollm2")
    assert smol.donor.source == "smollm2-135m" and smol.tokenizer.source == "donor"
    cpu = load_recipe("smollm2", preset="cpu")
    assert cpu.name == "smollm2-cpu" and cpu.device == "cpu"
    assert cpu.train.max_steps < smol.train.max_steps


def test_default_recipe_heals_the_real_donor_against_both_baselines():
    default = load_recipe()
    assert default.name == "default" and default.donor.source == "smollm2-135m"
    assert default.tokenizer.source == "donor"
    healed = [s for s in default.students if s.heal is not None]
    hybrids = [s for s in healed if s.attention_layers]
    pure = [s for s in healed if not s.attention_layers]
    assert hybrids and pure and all(len(s.attention_layers) <= 4 for s in hybrids)
    xatl, scratch = default.student(default.report.main), default.student(default.report.baseline)
    assert xatl.heal is None and xatl.unfreeze.startswith("lit") and xatl.copy != "none"
    assert scratch.heal is None and scratch.copy == "none"
    assert {m for s in default.students for m in s.mixers} == set(pure[0].mixers)   # one architecture for all
    long = long_context_options(pure[0].mixers[0], default.data.block_size)        # xatl heal's variant, for all
    assert all(dict(s.mixer_options) == long for s in default.students), "the recipe's &long drifted from heal's"
    assert {"ppl", "piqa", "arc_easy", "hellaswag", "lambada"} <= set(default.eval.tasks)
    seeds = load_recipe(preset="seeds")
    assert seeds.name == "default-seeds" and all(len(s.seeds) >= 2 for s in seeds.students)
    assert {s.name for s in seeds.students} == {pure[0].name, xatl.name, scratch.name}
    assert seeds.train == default.train                    # the same tokens as the demo


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.update(trian={"max_steps": 3}), "recipe t.yaml: trian: unknown key; did you mean 'train'?"),
    (lambda r: r["students"][2].update(copy="embed,attn"), "students[2].copy: unknown component 'attn'"),
    (lambda r: r["train"].update(max_steps="ten"), "train.max_steps: expected an integer, got str 'ten'"),
    (lambda r: r["train"].update(max_steps=0), "train.max_steps: must be >= 1, got 0"),
    (lambda r: r["train"].update(lr=-0.1), "train.lr: must be > 0"),
    (lambda r: r["donor"]["architecture"].update(hiden_size=8), "donor.architecture.hiden_size: unknown key"),
    (lambda r: r["students"][0]["mixers"].append("lstm"), "students[0].mixers[2]: unknown mixer 'lstm'"),
    (lambda r: r["students"][1].update(unfreeze="sometimes"), "students[1].unfreeze: unknown unfreeze schedule 'sometimes'"),
    (lambda r: r["students"][3].update(attention_layers=[5]), "students[3].attention_layers[0]: layer 5 does not"),
    (lambda r: r["students"][3].update(group="misc"), "students[3].group: unknown group 'misc'"),
    (lambda r: r["students"][1].update(copy="default"), "students[1].copy: the baseline 'scratch' must be"),
    (lambda r: r["students"][0].pop("mixers"), "students[0].mixers: required key is missing"),
    (lambda r: r["eval"].update(tasks=["ppl", "mmlu"]), "eval.tasks[1]: unknown task 'mmlu'"),
    (lambda r: r["students"][4].update(seeds=[1, 1]), "students[4].seeds: give one or more distinct seeds"),
    (lambda r: r["students"][0].update(freeze="yes"), "students[0].freeze: expected true or false"),
    (lambda r: r.update(students={"name": "x"}), "students: expected a list"),
    (lambda r: r["students"][0].update(heal={"lora_rnk": 4}), "students[0].heal.lora_rnk: is not a HealConfig field"),
    (lambda r: r["students"][0].update(heal={"budget": "5m"}), "students[0].heal.budget: is set by the recipe"),
    (lambda r: r["students"][0].update(heal={"stage2": "melt"}), "students[0].heal: unknown stage2 'melt'"),
    (lambda r: r["students"][0].update(heal={}, lr=0.01), "students[0].lr: a healed student takes its learning"),
    (lambda r: r["students"][1].update(heal={}), "students[1].copy: a healed student copies every shared donor"),
    (lambda r: r["students"][1].update(heal={}, copy="all"), "students[1].heal: the baseline 'scratch' must be"),
    (lambda r: r.update(prompts={"texts": ["ok", " "]}), "prompts.texts[1]: is empty"),
    (lambda r: r.update(report={"main": "nope"}), "report.main: no student named 'nope'"),
    (lambda r: r["train"].update(warmup_steps=20), "train.warmup_steps: 20 is more than max_steps (12)"),
    (lambda r: r["donor"]["train"]["options"].update(sav_every=3), "donor.train.options.sav_every: is not a "),
    (lambda r: r["train"]["options"].update(lr=3), "train.options.lr: is set by the recipe itself"),
    (lambda r: r["eval"].update(suite_students=["xatl", "ghost"]), "eval.suite_students[1]: no student named"),
    (lambda r: r["students"][1].update(lr_sweep=[0.001, -1.0]), "students[1].lr_sweep[1]: must be > 0"),
    (lambda r: r["students"][1].update(lr_sweep=[0.001, 0.001]), "students[1].lr_sweep: give distinct rates"),
    (lambda r: r["students"][1].update(lr_sweep=[0.001], lr=0.01), "students[1].lr_sweep: give distinct rates, and "
     "no lr"),
    (lambda r: r["students"][1].update(train={"max_step": 40}), "students[1].train.max_step: unknown key"),
    (lambda r: r["students"][1].update(train={"lr": 0.1}), "students[1].train.lr: set the student's lr"),
    (lambda r: r["students"][1].update(train={"max_steps": 40, "warmup_steps": 50}),
     "students[1].train.warmup_steps: 50 is more than max_steps (40)"),
    (lambda r: r["students"][1].update(train={"options": {"eval_evry": 2}}), "students[1].train.options.eval_evry"),
])
def test_bad_recipes_are_refused_with_the_path(mutate, expected):
    raw = tiny_raw()
    mutate(raw)
    assert expected in _refused(raw)


def test_paper_recipe_sweeps_both_arms_and_trains_scratch_on_the_end_to_end_budget():
    paper = load_recipe("paper")
    xatl, scratch = paper.student("xatl"), paper.student("scratch")
    assert xatl.mixers == scratch.mixers == ["retention", "gla"]
    assert len(xatl.lr_sweep) >= 3 and len(scratch.lr_sweep) >= 3 and len(xatl.seeds) >= 3 <= len(scratch.seeds)
    assert xatl.unfreeze.startswith("lit:")                             # the paper's rule, not the variant
    assert paper.train_of(xatl).max_steps == 50
    assert paper.train_of(scratch).max_steps == paper.donor.train.max_steps + paper.train.max_steps
    assert paper.train_of(scratch).options["eval_at"][0] == 1 and paper.train_of(scratch).options["tensorboard"] is False
    assert paper.eval.tasks == ["ppl"]                                  # no zero-shot claims from a chance-level donor
    sweep = paper.sweep_runs()
    assert len(sweep) == 2 * (len(xatl.lr_sweep) + len(scratch.lr_sweep)) and {r.seed for r in sweep} == {0}
    assert sweep[0].id == "retention-xatl-lr0.000375-s0"
    minute = load_recipe("paper", preset="minute")
    assert minute.train_of(minute.student("scratch")).max_steps == 16


def test_float_written_without_a_dot_is_accepted():
    raw = tiny_raw()
    raw["train"]["lr"] = "3e-4"          # YAML 1.1 reads this as a string
    assert parse_recipe(raw).train.lr == pytest.approx(3e-4)


def test_presets_and_sets():
    raw = tiny_raw(presets={"quick": {"train": {"max_steps": 5}, "device": "cpu"}})
    recipe = parse_recipe(copy.deepcopy(raw), preset="quick", sets=["students[0].seeds=[0, 2]", "eval.limit=7"])
    assert recipe.name == "tiny-quick" and recipe.train.max_steps == 5 and recipe.train.eval_every == 4
    assert recipe.student("xatl").seeds == [0, 2] and recipe.eval.limit == 7
    with pytest.raises(ConfigError, match="no preset 'gpu'; presets: quick"):
        parse_recipe(raw, preset="gpu")
    with pytest.raises(ConfigError, match="train.max_steps: expected an integer"):
        parse_recipe(raw, sets=["train.max_steps=many"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_recipe(raw, sets=["train.max_steps"])


def test_cli_refuses_a_bad_recipe_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstudents:\n  - {name: xatl, mixers: [retention], copy: attn}\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("xatl run: error: recipe bad.yaml: students[0].copy: unknown component 'attn'; choose from: "
                   "embed, norms, mlp, lm_head, o_proj, qkv (or all, default, none)")
    assert not (tmp_path / "runs").exists()
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert main(["run", str(broken)]) == 2
    assert "not valid YAML (line" in capsys.readouterr().err
    assert main(["run", "no-such-recipe"]) == 2
    assert "not a file and not an embedded recipe (default, paper, smollm2" in capsys.readouterr().err


def test_cli_check_and_list(capsys):
    assert main(["run", "--check", "--set", "train.max_steps=70"]) == 0
    out = capsys.readouterr().out
    assert "name: default" in out and "max_steps: 70" in out
    assert main(["run", "--list"]) == 0
    assert "smollm2" in capsys.readouterr().out

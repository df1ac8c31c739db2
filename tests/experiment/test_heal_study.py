"""A study with healed students (``heal:`` in a student): they train on the recipe's own budget (the same tokens as
plain XATL and scratch), their curves start at step 0, the report compares them over seeds, the prompts are
continued by every model, and a rerun resumes without redoing anything."""

from __future__ import annotations

import json
import re

import pytest
from experiment_helpers import tiny_raw

from xatl.experiment import parse_recipe, run_experiment
from xatl.experiment.summary import beats

pytestmark = [pytest.mark.slow, pytest.mark.real]

WINDOW = {"window": 8}


def heal_raw() -> dict:
    return tiny_raw(
        name="tinyheal",
        students=[
            {"name": "heal", "mixers": ["lolcats"], "mixer_options": WINDOW, "heal": {"align_lr": 0.01},
             "group": "heal", "seeds": [0, 1]},
            {"name": "heal-hybrid", "mixers": ["lolcats"], "mixer_options": WINDOW, "attention_layers": [1],
             "heal": {}, "group": "heal"},
            {"name": "xatl", "mixers": ["lolcats"], "mixer_options": WINDOW, "copy": "all",
             "unfreeze": "lit:threshold=0.01,patience=2", "seeds": [0, 1]},
            {"name": "scratch", "mixers": ["lolcats"], "mixer_options": WINDOW, "copy": "none"},
        ],
        eval={"tasks": ["ppl"], "ppl_documents": 3, "batch_size": 8},
        prompts={"texts": ["the cat", "python code"], "max_new_tokens": 4},
        long_context={"enabled": True, "retrieval_students": ["heal"],
                      "settings": {"max_length": 512, "lengths": [320, 512], "depths": [0.5], "samples": 1,
                                   "documents": 2}},
        profile={"enabled": False})


def test_healed_students_in_a_study(tmp_path):
    recipe = parse_recipe(heal_raw())
    report = run_experiment(recipe, tmp_path / "runs", progress=False, command="xatl run tinyheal.yaml")
    study = tmp_path / "runs" / "tinyheal"
    text = report.read_text()
    summary = json.loads((study / "summary.json").read_text())
    runs = summary["runs"]

    tokens = recipe.train.max_steps * recipe.train.micro_batch_size * recipe.data.block_size
    for run in runs.values():
        assert run["curve"][0][0] == 0                                  # every curve starts at step 0
        assert run["tokens"] == tokens, run["id"]                       # the same tokens for every student
        assert run["eval"]["ppl"] > 1
    healed = runs["lolcats-heal-s0"]
    assert healed["healed"] and healed["copy"] == "all"
    assert healed["heal"]["align_steps"] + healed["heal"]["lm_steps"] == recipe.train.max_steps
    plan = json.loads((study / "students" / "lolcats-heal-s0" / "heal" / "heal.json").read_text())
    assert plan["status"] == "done" and plan["config"]["align_lr"] == 0.01
    assert not runs["lolcats-xatl-s0"]["healed"]

    # the comparison over seeds: two seeds of heal and xatl, one of scratch (so that one is never established)
    (row,) = [h for h in summary["heal"] if h["student"] == "heal"]
    verdicts = row["comparisons"]["ppl"]
    assert verdicts["heal < scratch"][0] is None and "one seed" in verdicts["heal < scratch"][1]
    assert "heal < xatl" in verdicts
    assert not [h for h in summary["heal"] if h["student"] == "heal-hybrid"][0]["comparisons"]
    assert "## Healing" in text and "lolcats, held-out perplexity: heal < xatl?" in text
    assert "plots/curves_heal.png" in text and (study / "plots" / "curves_heal.png").is_file()

    # prompts: the donor and the first seed of every student, each prompt continued
    prompts = summary["prompts"]
    assert [m["model"] for m in prompts["models"]] == ["donor", "lolcats heal", "lolcats heal-hybrid",
                                                       "lolcats xatl", "lolcats scratch"]
    assert all(len(m["completions"]) == 2 and all(c["new_tokens"] >= 1 for c in m["completions"])
               for m in prompts["models"])
    assert "**the cat**" in text and "- *lolcats heal* (" in text

    # long context: the donor and every student by position, passkey for the donor and `heal` only; the donor (256
    # positions) and the hybrid are scored up to their limit, the pure students to 512
    long = summary["long_context"]["models"]
    assert list(long) == ["donor", "lolcats heal", "lolcats heal-hybrid", "lolcats xatl", "lolcats scratch"]
    assert "passkey" in long["donor"] and "passkey" in long["lolcats heal"] and "passkey" not in long["lolcats xatl"]
    assert long["donor"]["ppl_position"]["summary"]["scored_length"] == 256
    assert long["lolcats heal"]["ppl_position"]["summary"]["scored_length"] == 512
    assert long["lolcats heal"]["ppl_position"]["summary"]["perplexity"]["256-511"] > 1
    assert "256-511" in long["donor"]["ppl_position"]["summary"]["skipped"]
    assert "## Long context" in text and "| lolcats heal |" in text and "x) |" in text
    for name in ("long_ppl_position.png", "long_passkey.png"):
        assert (study / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert (study / "long" / "lolcats-heal-s0" / "results.passkey.documents.json").is_file()

    again = run_experiment(recipe, tmp_path / "runs", progress=False)       # a rerun redoes nothing
    assert again == report
    assert re.search(r"This invocation: \d+ skipped stages \(", again.read_text())


def test_beats_needs_two_seeds_and_non_overlapping_ranges():
    assert beats([1.0, 1.1], [1.3, 1.4])[0] is True
    assert beats([1.3, 1.4], [1.0, 1.1])[0] is False
    ok, why = beats([1.0, 1.35], [1.3, 1.4])
    assert ok is None and "within the seed spread" in why
    ok, why = beats([1.0], [2.0, 2.1])
    assert ok is None and "one seed" in why
    assert beats([None], [1.0, 2.0]) == (None, "not measured")

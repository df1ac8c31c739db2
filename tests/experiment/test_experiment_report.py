"""Report helpers on synthetic results: headline metrics, relative scores only above chance, noise of a
zero-shot difference, and the verdict lines of the headline section."""

from __future__ import annotations

import math

import pytest

from xatl.experiment.evaluation import donor_above_chance, headline
from xatl.experiment.report import SECTIONS, section_headline
from xatl.experiment.summary import _difference_noise


def _results(piqa=0.70, donor_piqa=0.80, donor_hs=0.26, stderr=0.02):
    return {
        "tasks": {"ppl": {"metrics": {"perplexity": 20.0, "bits_per_byte": 1.1}},
                  "piqa": {"metrics": {"acc": piqa, "acc_stderr": stderr, "acc_norm": 0.6}, "chance": 0.5},
                  "hellaswag": {"metrics": {"acc": 0.3, "acc_norm": 0.30, "acc_norm_stderr": stderr},
                                "chance": 0.25}},
        "donor": {"tasks": {"piqa": {"metrics": {"acc": donor_piqa, "acc_stderr": stderr}},
                            "hellaswag": {"metrics": {"acc_norm": donor_hs, "acc_norm_stderr": stderr}}}},
        "relative_to_donor": {"piqa": {"acc": (piqa - 0.5) / (donor_piqa - 0.5)},
                              "hellaswag": {"acc_norm": (0.30 - 0.25) / (donor_hs - 0.25)},
                              "ppl": {"perplexity_ratio": 1.25}},
    }


def test_headline_uses_one_metric_per_task_and_drops_relative_scores_at_chance():
    h = headline(_results())
    assert h["tasks"] == {"hellaswag": 0.30, "piqa": 0.70}
    assert h["metrics"] == {"hellaswag": "acc_norm", "piqa": "acc"}
    assert h["zero_shot_avg"] == pytest.approx(0.5)
    assert h["zero_shot_stderr"] == pytest.approx(math.sqrt(2 * 0.02 ** 2) / 2)
    # the donor's hellaswag (0.26) is within two standard errors of chance (0.25): no relative score for it
    assert not donor_above_chance(_results(), "hellaswag", "acc_norm")
    assert donor_above_chance(_results(), "piqa", "acc")
    assert h["relative"] == {"piqa": pytest.approx(2 / 3)}
    assert h["ppl"] == 20.0 and h["ppl_ratio"] == 1.25


def test_difference_noise():
    assert _difference_noise([0.03], [0.04]) == pytest.approx(2 * 0.05)
    assert _difference_noise([0.03, 0.03], [0.04, 0.04]) == pytest.approx(2 * 0.05 / math.sqrt(2))
    assert _difference_noise([None], [0.04]) is None


def test_headline_verdicts():
    main = {"retention": {"scratch_final": (6.5, None, 1), "xatl_final": (5.5, None, 1), "speedups": [">= 20.00x"],
                          "scratch_zero_shot": (0.33, None, 1), "xatl_zero_shot": (0.34, None, 1),
                          "zero_shot_noise": 0.05, "verdict": "undecided",
                          "undecided": {"higher_zero_shot": "difference +0.010 within noise ±0.050"},
                          "checks": {"speedup": True, "lower_loss": True, "higher_zero_shot": None}},
            "gla": {"scratch_final": (6.5, None, 1), "xatl_final": (5.5, None, 1), "speedups": ["2.00x"],
                    "scratch_zero_shot": (None, None, 0), "xatl_zero_shot": (None, None, 0), "zero_shot_noise": None,
                    "verdict": "no", "checks": {"speedup": False, "lower_loss": True, "higher_zero_shot": None}}}
    text = section_headline({"main": main, "target_speedup": 2.5, "runs": {}, "budget": {"eval_every": 10}})
    assert ("- **retention**: meets: speedup, lower validation loss. not established: higher zero-shot average "
            "(difference +0.010 within noise ±0.050).") in text
    assert ("- **gla**: meets: lower validation loss. misses: speedup. not established: higher zero-shot average "
            "(not measured).") in text
    assert "| retention | 6.500 | 5.500 | >= 20.00x | 0.330 | 0.340 | undecided |" in text
    assert "plots/curves_main.png" in text
    assert len(SECTIONS) == len(set(SECTIONS)) == 16


def test_a_zero_shot_difference_within_noise_is_not_established():
    from xatl.experiment.summary import _higher

    assert _higher(0.36, 0.33, 0.05) == (None, "difference +0.030 within noise ±0.050")
    assert _higher(0.40, 0.33, 0.05) == (True, None)
    assert _higher(0.26, 0.33, 0.05) == (False, None)
    assert _higher(None, 0.33, 0.05) == (None, "not measured")


def test_compute_section_takes_a_real_donor_as_given_and_charges_a_self_trained_one():
    from xatl.experiment import load_recipe
    from xatl.experiment.report import section_compute

    real = section_compute({"donor": {}, "budget": {"tokens": 8192}, "runs": {}, "main": {}}, load_recipe("default"))
    assert "pretrained elsewhere" in real and "the paper's convention" in real and "natural one" in real
    runs = {"retention-xatl-s0": {"id": "retention-xatl-s0", "tokens": 100, "flops": 2.0e9}}
    main = {"retention": {"paper_flops_ratio": (4.0, 0.5, 3), "end_to_end": (0.8, 0.1, 3),
                          "end_to_end_range": [0.7, 0.9],
                          "scratch_final_vs_xatl_final": (False, "the other way round: difference -0.100")}}
    own = section_compute({"donor": {"trainer": {"flops": 5.0e10, "tokens": 600}}, "budget": {"tokens": 100},
                           "runs": runs, "main": main}, load_recipe("paper"))
    assert "| donor (pretraining, charged end to end only) | 600 | 5.000e+10 |" in own
    assert "| retention | 4.00 ± 0.50 (n=3) | 0.80 ± 0.10 (n=3) | 0.70-0.90 | no (the other way round" in own


def test_ablations_are_judged_on_the_seed_spread():
    from xatl.experiment import load_recipe
    from xatl.experiment.summary import ablation_rows

    recipe = load_recipe("toy")
    runs = {f"retention-{n}-s{s}": {"student": n, "mixer": "retention", "final_val_loss": v}
            for n, s, v in [("xatl", 0, 5.52), ("xatl", 1, 5.516), ("no-mlp", 0, 5.589), ("hybrid", 0, 5.456)]}
    rows = {r["student"]: r for r in ablation_rows(recipe, runs)}
    assert rows["no-mlp"]["verdict"] == "not established" and "one seed" in rows["no-mlp"]["why"]
    runs["retention-no-mlp-s1"] = {"student": "no-mlp", "mixer": "retention", "final_val_loss": 5.60}
    assert {r["student"]: r for r in ablation_rows(recipe, runs)}["no-mlp"]["verdict"] == "higher"

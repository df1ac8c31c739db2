"""lm-evaluation-harness integration: generated offline tasks, the registered ``xatl`` model, and agreement of
the built-in scorer with lm-eval on the same model and documents."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import yaml

import xatl
from tiny import tiny_donor
from xatl.eval import evaluate_path, write_lm_eval_tasks

pytest.importorskip("lm_eval")

import subproc
from xatl.eval.harness import lm_eval_evaluate, lm_eval_metrics  # noqa: E402

TASKS = "piqa,arc_easy,winogrande,lambada"


@pytest.fixture(scope="module")
def lm_suite(tmp_path_factory):
    from eval_helpers import write_suite

    root = tmp_path_factory.mktemp("lm-eval")
    suite = write_suite(root / "suite")
    names = write_lm_eval_tasks(root / "tasks", TASKS, suite=suite)
    return suite, root / "tasks", names


def _samples_by_doc(lm_results, task):
    return {s["doc"]["doc_id"]: [r[0][0] for r in s["resps"]] for s in lm_results["samples"][f"xatl_{task}"]}


def test_yaml_files(lm_suite):
    suite, tasks_dir, names = lm_suite
    assert names == ["xatl_piqa", "xatl_arc_easy", "xatl_winogrande", "xatl_lambada"]
    text = (tasks_dir / "xatl_winogrande.yaml").read_text()
    assert "!function xatl.eval.lm_tasks.process_docs" in text
    cfg = yaml.safe_load(text.replace("!function ", ""))
    assert cfg["dataset_kwargs"]["data_files"]["validation"] == str((suite / "winogrande/requests.jsonl.gz").absolute())
    assert (cfg["doc_to_text"], cfg["doc_to_choice"]) == ("gold", "contexts")      # multiple input
    lam = yaml.safe_load((tasks_dir / "xatl_lambada.yaml").read_text().replace("!function ", ""))
    assert lam["output_type"] == "loglikelihood" and lam["doc_to_target"] == "continuation"


def test_builtin_scorer_equals_lm_eval(lm_suite, tiny_dir):
    suite, tasks_dir, _ = lm_suite
    ours = evaluate_path(tiny_dir, TASKS, suite=suite, progress=False, log_samples=True, batch_size=4)
    theirs = lm_eval_evaluate(tiny_dir, tasks=TASKS, include_path=tasks_dir, log_samples=True, batch_size=4)
    metrics = lm_eval_metrics(theirs)
    for task in TASKS.split(","):
        for metric, value in metrics[task].items():
            assert ours["tasks"][task]["metrics"][metric] == pytest.approx(value, rel=1e-5), (task, metric)
    for task in ("piqa", "arc_easy", "winogrande"):
        lls = _samples_by_doc(theirs, task)
        for s in ours["tasks"][task]["samples"]:
            np.testing.assert_allclose(s["loglikelihoods"], lls[s["doc_id"]], rtol=1e-5, atol=1e-5)
    lam = _samples_by_doc(theirs, "lambada")
    for s in ours["tasks"]["lambada"]["samples"]:
        assert s["loglikelihood"] == pytest.approx(lam[s["doc_id"]][0], rel=1e-5)


def test_xatl_model_loads_students(lm_suite, tmp_path, tokenizer):
    """``--model xatl`` loads an XATL student directory; its scores equal the built-in scorer's."""
    suite, tasks_dir, _ = lm_suite
    donor = tiny_donor("llama", max_position_embeddings=512)
    student, _ = xatl.transfer(donor, xatl.student_config(donor.config, mixer="retention"))
    student.save_pretrained(tmp_path / "student")
    tokenizer.save_pretrained(tmp_path / "student")
    theirs = lm_eval_metrics(lm_eval_evaluate(tmp_path / "student", tasks="piqa", include_path=tasks_dir))
    ours = evaluate_path(tmp_path / "student", "piqa", suite=suite, progress=False)
    assert ours["model"]["model_type"] == "xatl"
    assert ours["tasks"]["piqa"]["metrics"]["acc"] == pytest.approx(theirs["piqa"]["acc"])
    assert ours["tasks"]["piqa"]["metrics"]["acc_norm"] == pytest.approx(theirs["piqa"]["acc_norm"])


def test_xatl_eval_lm_eval_flag(lm_suite, tiny_dir, tmp_path, capsys):
    """``xatl eval --lm-eval`` scores the suite through lm-eval (tasks generated on the fly)."""
    from xatl.cli.main import main

    suite, _, _ = lm_suite
    out = tmp_path / "lm.json"
    assert main(["eval", "--model", str(tiny_dir), "--tasks", "winogrande", "--suite", str(suite), "--lm-eval",
                 "--out", str(out), "--no-progress"]) == 0
    assert "xatl_winogrande" in capsys.readouterr().out
    theirs = lm_eval_metrics(json.loads(out.read_text()))["winogrande"]
    ours = evaluate_path(tiny_dir, "winogrande", suite=suite, progress=False)["tasks"]["winogrande"]["metrics"]
    assert (theirs["acc"], theirs["acc_norm"]) == pytest.approx((ours["acc"], ours["acc_norm"]))


@pytest.mark.slow
def test_lm_eval_command_line_runs_offline(lm_suite, tiny_dir, tmp_path):
    """The documented command: lm-eval's own CLI with --model xatl registered (python -m xatl.eval.harness)."""
    _, tasks_dir, _ = lm_suite
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "xatl.eval.harness", "--model", "xatl", "--model_args", f"pretrained={tiny_dir}",
           "--tasks", "xatl_piqa", "--include_path", str(tasks_dir), "--limit", "3", "--output_path", str(tmp_path)]
    proc = subproc.run(cmd, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "xatl_piqa" in proc.stdout and "acc_norm" in proc.stdout

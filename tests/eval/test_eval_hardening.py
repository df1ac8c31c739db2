"""Evaluation inputs that used to end in a traceback (or a meaningless figure): one line, nothing lost."""

from __future__ import annotations

import json

import pytest
from transformers import BertConfig, BertForMaskedLM

from xatl.cli.main import main
from xatl.errors import ConfigError, ModelLoadError
from xatl.eval import evaluate_path, load_model
from xatl.eval.runner import relative_scores


def _err(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("Loading weights")]


def test_unwritable_out_is_refused_before_the_evaluation(tiny_dir, suite, tmp_path, capsys, monkeypatch):
    import xatl.eval.runner as runner

    monkeypatch.setattr(runner, "evaluate_path", lambda *a, **k: pytest.fail("evaluated before checking --out"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = main(["eval", "--model", str(tiny_dir), "--tasks", "piqa", "--suite", str(suite), "--out",
                 str(blocker / "res.json"), "--no-progress"])
    err = _err(capsys)
    assert code == 2 and len(err) == 1 and "cannot be written" in err[0] and "choose another path" in err[0]
    assert blocker.read_text() == "not a directory"
    assert main(["eval", "--model", str(tiny_dir), "--tasks", "piqa", "--suite", str(suite), "--out",
                 str(tmp_path), "--no-progress"]) == 2
    assert "is a directory; give a file path" in _err(capsys)[0]


def test_a_bert_checkpoint_is_not_a_causal_lm(tmp_path):
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"'bert' model \(BertForMaskedLM\), which is not a causal language"):
        load_model(tmp_path)


def test_continuations_longer_than_the_context_are_skipped_and_counted(tiny_dir, suite):
    full = evaluate_path(tiny_dir, "lambada", suite=suite, progress=False)
    assert full["tasks"]["lambada"]["skipped_documents"] == 0
    short = evaluate_path(tiny_dir, "lambada", suite=suite, max_length=6, progress=False)   # " friend" = 7 chars
    t = short["tasks"]["lambada"]
    assert 0 < t["skipped_documents"] < full["tasks"]["lambada"]["documents"]
    assert t["documents"] + t["skipped_documents"] == full["tasks"]["lambada"]["documents"]
    with pytest.raises(ConfigError, match="no document's continuation fits the model's context of 2 tokens"):
        evaluate_path(tiny_dir, "lambada", suite=suite, max_length=2, progress=False)


def test_no_relative_score_where_the_donor_is_at_chance():
    def res(acc, err):
        return {"tasks": {"piqa": {"metrics": {"acc": acc, "acc_stderr": err}, "chance": 0.5, "documents": 20,
                                   "version": {"sha256": "x"}}}}

    rel, skipped = relative_scores(res(0.6, 0.1), res(0.55, 0.1))          # donor 0.5 stderr above chance
    assert rel["piqa"]["acc"] is None and "within two standard errors of chance" in skipped["piqa"]
    rel, skipped = relative_scores(res(0.6, 0.01), res(0.7, 0.01))
    assert rel["piqa"]["acc"] == pytest.approx(0.5) and not skipped
    assert json.dumps(rel)                                                 # still JSON

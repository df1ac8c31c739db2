"""Bad input is refused with one line that names the problem and the fix."""

from __future__ import annotations

import gzip
import json

import pytest
from transformers import ViTConfig

from xatl.cli.main import main
from xatl.errors import AssetError, ConfigError, DataError, ModelLoadError
from xatl.eval import evaluate, evaluate_path, load_model, load_task, parse_tasks


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        parse_tasks("piqa,hellaswagg")
    msg = str(e.value)
    assert "'hellaswagg'" in msg
    for known in ("lambada", "hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande", "ppl"):
        assert known in msg


def test_unknown_task_on_the_command_line(capsys, tiny_dir):
    assert main(["eval", "--model", str(tiny_dir), "--tasks", "mmlu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xatl eval: error: unknown task 'mmlu'; choose one of:")


def test_model_that_is_not_a_causal_lm(tmp_path):
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'vit' model, which is not a causal language model"):
        load_model(tmp_path)


def test_directory_without_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing")


def test_model_without_tokenizer(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="no loadable tokenizer"):
        load_model(tmp_path)


def test_missing_benchmark_file_names_the_fetch(suite, tiny_model, tokenizer):
    (suite / "piqa" / "requests.jsonl.gz").unlink()
    with pytest.raises(AssetError, match="missing; run `xatl fetch evalsuite`"):
        evaluate(tiny_model, tokenizer, "piqa", suite=suite, progress=False)


def test_missing_benchmark_file_fails_before_the_model_loads(suite, tiny_dir, monkeypatch, capsys):
    import xatl.eval.runner as runner

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the benchmark files were checked")

    monkeypatch.setattr(runner, "load_model", refuse)
    (suite / "lambada" / "requests.jsonl.gz").unlink()
    assert main(["eval", "--model", str(tiny_dir), "--tasks", "piqa,lambada", "--suite", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lambada/requests.jsonl.gz' is missing; run `xatl fetch evalsuite`" in err[0]


def test_truncated_benchmark_file_names_the_fetch(suite):
    path = suite / "piqa" / "requests.jsonl.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(AssetError, match="does not match its manifest.*xatl fetch evalsuite"):
        load_task("piqa", suite)
    (suite / "manifest.json").unlink()                 # without a manifest the damage is still caught
    with pytest.raises(AssetError, match="is corrupt.*xatl fetch evalsuite"):
        load_task("piqa", suite)


@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(b'{"doc_id": 0}\n'),
                                     gzip.compress(b"{broken json\n"), gzip.compress(b"")])
def test_corrupt_benchmark_content_names_the_fetch(suite, content):
    (suite / "manifest.json").unlink()
    (suite / "arc_easy" / "requests.jsonl.gz").write_bytes(content)
    with pytest.raises(AssetError, match="xatl fetch evalsuite"):
        load_task("arc_easy", suite)


def test_document_count_is_checked(suite):
    index = json.loads((suite / "tasks.json").read_text())
    index["piqa"]["documents"] = 1838
    (suite / "tasks.json").write_text(json.dumps(index))
    with pytest.raises(AssetError, match="holds 5 documents, expected 1838"):
        load_task("piqa", suite)


def test_bad_donor_results(tiny_dir, suite, tmp_path):
    with pytest.raises(DataError, match="do not exist"):
        evaluate_path(tiny_dir, "piqa", suite=suite, donor_results=tmp_path / "none.json", progress=False)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="no 'tasks'"):
        evaluate_path(tiny_dir, "piqa", suite=suite, donor_results=tmp_path / "bad.json", progress=False)


def test_bad_limit_and_missing_model_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "x", "--limit", "0"])
    assert e.value.code == 2
    assert main(["eval"]) == 2
    assert "--model is required" in capsys.readouterr().err

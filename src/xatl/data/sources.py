"""Data sources -> one ``datasets`` table of documents with columns ``text``, ``source`` and ``id``.

A source is a fetched corpus name, ``default`` (the default mixture), a file or directory of files, or
``hub:NAME[:CONFIG]``. Every refusal is one :class:`~xatl.errors.DataError` line naming the source and the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from ..assets import ASSETS, DEFAULT_MIXTURE, DOCUMENTS, fetch, xatl_home
from ..errors import DataError
from .config import DataConfig

log = logging.getLogger(__name__)

BUILDERS = {".txt": "text", ".md": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
"""File suffix -> ``datasets`` builder (``.gz`` is allowed after the text and json suffixes)."""
SAMPLE_BY = {"file": "document", "paragraph": "paragraph", "line": "line"}
COLUMNS = ("text", "source", "id")


def expand_sources(sources: list[str]) -> list[str]:
    """``default`` -> the corpora of the default mixture; duplicates removed (first occurrence kept)."""
    out: list[str] = []
    for s in sources:
        for name in (DEFAULT_MIXTURE if s == "default" else (s,)):
            if name not in out:
                out.append(name)
    return out


def builder_for(path: Path) -> str | None:
    """The ``datasets`` builder of a file, from its suffix (None: not a data file)."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        inner = suffixes[0] if len(suffixes) == 2 else ""
        return BUILDERS.get(inner) if inner in (".txt", ".md", ".jsonl", ".json") else None
    return BUILDERS.get(suffixes[-1]) if suffixes else None


def data_files(path: Path) -> dict[str, list[str]]:
    """Builder -> files of a file or (recursively) a directory. DataError when there is nothing to read."""
    if path.is_file():
        builder = builder_for(path)
        if builder is None:
            raise DataError(f"data file {str(path)!r} has an unsupported type; use .txt, .md, .jsonl, .json, "
                            ".parquet or .csv")
        return {builder: [str(path)]}
    files: dict[str, list[str]] = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts):
            builder = builder_for(p)
            if builder is not None:
                files.setdefault(builder, []).append(str(p))
    if not files:
        raise DataError(f"directory {str(path)!r} holds no .txt, .md, .jsonl, .json, .parquet or .csv files")
    return files


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def check_readable(files: list[str]) -> None:
    """Refuse an empty or unreadable file before ``datasets`` turns it into an obscure error."""
    for f in files:
        try:
            with open(f, "rb") as fh:
                first = fh.read(1)
        except OSError as e:
            raise DataError(f"data file {f!r} cannot be read ({type(e).__name__}: {e.strerror or e}); "
                            "check its permissions") from None
        if not first:
            raise DataError(f"data file {f!r} is empty; remove it or give a file with documents")


def _load(builder: str, files: list[str], cfg: DataConfig, what: str):
    check_readable(files)
    kwargs = {"sample_by": SAMPLE_BY[cfg.txt_unit], "keep_linebreaks": True} if builder == "text" else {}
    try:
        return datasets.load_dataset(builder, data_files=files, split="train", streaming=cfg.streaming,
                                     cache_dir=str(xatl_home() / "hf-datasets"), **kwargs)
    except Exception as e:  # datasets raises many types for unreadable input (DatasetGenerationError, OSError...)
        cause = e.__cause__ or e
        if "corresponds to no data" in str(e):
            raise DataError(f"{what} holds no documents (only blank lines); check the file") from None
        raise DataError(f"could not read {what} ({type(cause).__name__}: {_first_line(cause)}); check that the "
                        f"file is readable and well-formed {builder}") from None


def _columns(ds) -> list[str] | None:
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds), None)           # a streaming dataset whose schema is not known yet
    return list(first) if first is not None else []


def _normalize(ds, column: str, name: str, cfg: DataConfig, what: str):
    """Rename/fill to (text, source, id), drop empty documents, keep the first ``max_documents``."""
    columns = _columns(ds)
    if column not in columns:
        raise DataError(f"{what} has no column {column!r} (its columns: {', '.join(columns) or 'none'}); "
                        "pass the right text_column")
    if cfg.max_documents is not None:
        ds = ds.take(cfg.max_documents) if cfg.streaming else ds.select(range(min(cfg.max_documents, len(ds))))
    has_id = "id" in columns and column != "id"

    def fix(batch, indices):
        texts = batch[column]
        bad = next((t for t in texts if t is not None and not isinstance(t, str)), None)
        if bad is not None:
            raise DataError(f"column {column!r} of {what} holds {type(bad).__name__} values, not text; "
                            "pass the right text_column")
        ids = [str(i) for i in batch["id"]] if has_id else [f"{name}:{i}" for i in indices]
        return {"text": [t or "" for t in texts], "source": [name] * len(texts), "id": ids}

    remove = [c for c in columns if c not in ("text",)] if columns else None
    kwargs = {} if cfg.streaming else {"desc": f"reading {name}"}
    try:
        ds = ds.map(fix, batched=True, with_indices=True, remove_columns=remove, **kwargs)
        ds = ds.filter(lambda b: [bool(t.strip()) for t in b["text"]], batched=True, **kwargs)
    except DataError:
        raise
    except Exception as e:  # a malformed file may only fail when rows are read (streaming, lazy json)
        raise DataError(f"could not read {what} ({type(e).__name__}: {_first_line(e)})") from None
    if not cfg.streaming and len(ds) == 0:
        raise DataError(f"{what} holds no documents (empty file or only blank text); check the file")
    return ds


def read_source(spec: str, cfg: DataConfig):
    """One source -> documents (``text``, ``source``, ``id``); a ``Dataset`` (or ``IterableDataset`` if streaming)."""
    if spec in ASSETS:
        asset = ASSETS[spec]
        if asset.kind != "corpus":
            raise DataError(f"{spec!r} is a {asset.kind}, not a corpus; corpora: "
                            f"{', '.join(n for n, a in ASSETS.items() if a.kind == 'corpus')}")
        path = fetch(spec, progress=False) / DOCUMENTS
        return _normalize(_load("json", [str(path)], cfg, f"corpus {spec!r}"), "text", spec, cfg, f"corpus {spec!r}")
    if spec.startswith("hub:"):
        return _read_hub(spec, cfg)
    path = Path(spec).expanduser()
    if not path.exists():
        corpora = ", ".join(["default"] + [n for n, a in ASSETS.items() if a.kind == "corpus"])
        raise DataError(f"data source {spec!r} is neither an existing file or directory, nor a corpus ({corpora}), "
                        "nor hub:NAME")
    parts = []
    for builder, files in data_files(path).items():
        what = f"data file {files[0]!r}" if len(files) == 1 else f"the {builder} files under {str(path)!r}"
        column = "text" if builder == "text" else cfg.text_column
        parts.append(_normalize(_load(builder, files, cfg, what), column, spec, cfg, what))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _read_hub(spec: str, cfg: DataConfig):
    name, _, config = spec[len("hub:"):].partition(":")
    if not name:
        raise DataError(f"hub source {spec!r} names no dataset; write hub:NAME or hub:NAME:CONFIG")
    try:
        ds = datasets.load_dataset(name, config or None, split="train", streaming=cfg.streaming)
    except Exception as e:
        raise DataError(f"could not load hub dataset {name!r} ({_first_line(e)}); the hub may be unreachable here: "
                        "use a fetched corpus (xatl fetch --list) or local files") from None
    return _normalize(ds, cfg.text_column, spec, cfg, f"hub dataset {name!r}")


def read_sources(cfg: DataConfig):
    """Every source of ``cfg``, concatenated in order (columns ``text``, ``source``, ``id``)."""
    parts = [read_source(s, cfg) for s in expand_sources(cfg.sources)]
    parts = [p.select_columns(list(COLUMNS)) if not cfg.streaming else p for p in parts]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)

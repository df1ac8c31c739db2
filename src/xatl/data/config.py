"""The run arguments of the data pipeline (one dataclass, one source of truth)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from ..errors import DataError

TXT_UNITS = ("file", "paragraph", "line")


@dataclass
class DataConfig:
    """What text to train on, how to split it and how to cut it into blocks."""

    sources: list[str] = field(default_factory=lambda: ["default"])
    """Where the documents come from, mixed in this order. Each entry is a fetched corpus name (``wiki``, ``sotu``,
    ``pydoc``; ``default`` = all three), a path to a ``.txt``/``.md``/``.jsonl``/``.json``/``.parquet``/``.csv``
    file (``.gz`` allowed for text/json) or a directory of them, or ``hub:NAME`` / ``hub:NAME:CONFIG`` (a Hugging Face
    hub dataset, where a hub is reachable). A single string is accepted too."""
    text_column: str = "text"
    """Column holding the text in json/parquet/csv/hub sources (fetched corpora always use ``text``)."""
    block_size: int = 512
    """Tokens per training block; documents are packed back to back with EOS between them."""
    val_fraction: float = 0.01
    """Fraction of whole documents held out for validation (chosen by a hash of the text and ``seed``, so the same
    documents are held out on every run and identical documents always land on the same side). Every source with
    two or more documents keeps at least one for validation when this is positive."""
    val_documents: int | None = None
    """Hold out exactly this many documents instead (the lowest hashes); overrides ``val_fraction``."""
    seed: int = 0
    """Seed of the split hash."""
    num_proc: int | None = None
    """Processes for tokenization (None: one process; fast tokenizers already use several threads)."""
    streaming: bool = False
    """Read, split, tokenize and pack lazily (for corpora larger than memory); nothing is cached on disk."""
    max_documents: int | None = None
    """Use only the first N documents of each source (quick runs, tests)."""
    cache_dir: str | None = None
    """Where tokenized datasets are cached (default ``$XATL_HOME/datasets``)."""
    txt_unit: str = "file"
    """What one document is in a ``.txt``/``.md`` source: the whole ``file``, each blank-line separated
    ``paragraph``, or each ``line``."""
    batch_size: int = 1000
    """Documents per tokenizer call."""

    def __post_init__(self) -> None:
        if isinstance(self.sources, (str, os.PathLike)):
            self.sources = [str(self.sources)]
        self.sources = [str(s) for s in self.sources]
        if not self.sources:
            raise DataError("no data sources given; pass a corpus name (wiki, sotu, pydoc, default) or a file path")
        if not isinstance(self.block_size, int) or self.block_size < 2:
            raise DataError(f"block_size must be an integer >= 2, got {self.block_size!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise DataError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.val_documents is not None and self.val_documents < 0:
            raise DataError(f"val_documents must be >= 0, got {self.val_documents!r}")
        if self.val_documents is not None and self.streaming:
            raise DataError("val_documents needs a full pass over the data; with streaming use val_fraction")
        if self.max_documents is not None and self.max_documents < 1:
            raise DataError(f"max_documents must be >= 1, got {self.max_documents!r}")
        if self.txt_unit not in TXT_UNITS:
            raise DataError(f"unknown txt_unit {self.txt_unit!r}; choose one of: {', '.join(TXT_UNITS)}")
        if self.num_proc is not None and self.num_proc < 1:
            raise DataError(f"num_proc must be >= 1, got {self.num_proc!r}")

    def to_dict(self) -> dict:
        return asdict(self)

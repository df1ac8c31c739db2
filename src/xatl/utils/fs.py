"""Crash-safe writes: nothing half-written is ever left where a later run would trust it.

Pattern: write into a temporary sibling (same filesystem), then ``os.replace`` into place. A directory that
is replaced keeps its previous version until the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputExistsError

MODEL_MARKERS = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def holds_model(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory that already holds a saved model."""
    p = Path(path)
    return p.is_dir() and any((p / m).exists() for m in MODEL_MARKERS)


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output directory that holds a model (unless ``overwrite``) or any other non-empty directory.

    Called *before* any expensive work so that bad input fails fast.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"output path {str(p)!r} is a file; choose a directory path")
    if holds_model(p) and not overwrite:
        raise OutputExistsError(f"output directory {str(p)!r} already holds a model; pass --overwrite to replace it")
    if p.is_dir() and any(p.iterdir()) and not holds_model(p) and not overwrite:
        raise OutputExistsError(f"output directory {str(p)!r} is not empty; choose a new path or pass --overwrite")
    return p


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only if the ``with`` body succeeds.

    On failure (any exception, including KeyboardInterrupt) the temporary directory is removed and ``path`` is
    untouched. With ``overwrite`` an existing ``path`` is swapped out only after the new content is complete.
    """
    final = Path(path).absolute()
    if final.exists() and not overwrite and not (final.is_dir() and not any(final.iterdir())):
        raise OutputExistsError(f"{str(final)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _fsync_dir(tmp)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / "content")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (fsynced)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, sort_keys=False) + "\n").encode())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        for root, _dirs, files in os.walk(path):
            for name in files:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

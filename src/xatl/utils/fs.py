"""Crash-safe writes: nothing half-written is ever left where a later run would trust it.

Pattern: write into a temporary sibling (same filesystem), then ``os.replace`` into place. A directory that
is replaced keeps its previous version until the new one is complete. Also: :func:`sha256_file`, the one file
hash (asset manifests, pinned downloads, the benchmark files, model weights).
"""

from __future__ import annotations

import contextlib
import hashlib
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


def check_output_dir(path: str | os.PathLike, overwrite: bool, owned: tuple[str, ...] = MODEL_MARKERS,
                     what: str = "a model") -> Path:
    """Refuse an output directory that holds ``what`` (one of the ``owned`` files; unless ``overwrite``), any other
    non-empty directory (even with ``overwrite``: only xatl's own output is ever replaced), or a location that
    cannot be written.

    Called *before* any expensive work so that bad input fails fast.
    """
    p = Path(path)
    ours = p.is_dir() and any((p / m).exists() for m in owned)
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"output path {str(p)!r} is a file; choose a directory path")
    if ours and not overwrite:
        raise OutputExistsError(f"output directory {str(p)!r} already holds {what}; pass --overwrite to replace it")
    if p.is_dir() and any(p.iterdir()) and not ours:
        raise OutputExistsError(f"output directory {str(p)!r} holds files that are not {what}; choose a new or "
                                f"empty directory (--overwrite only replaces {what})")
    folder = _nearest_existing(p.absolute())
    if not _writable_dir(folder):
        raise OutputExistsError(f"output directory {str(p)!r} cannot be written ({str(folder)!r} is not a writable "
                                "directory); choose another path")
    return p


def _nearest_existing(p: Path) -> Path:
    """``p`` itself when it exists, else its nearest existing parent (where creating ``p`` would start)."""
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable_dir(p: Path) -> bool:
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def _empty_dir(p: Path) -> bool:
    return p.is_dir() and not any(p.iterdir())


def check_writable_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output *file* path that cannot be written: a directory, or a location whose
    nearest existing folder is not writable (read-only, not a directory, no permission)."""
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        raise OutputExistsError(f"{flag} {str(path)!r} is a directory; give a file path such as results.json")
    folder = _nearest_existing(p.parent)
    if not _writable_dir(folder) or (p.exists() and not os.access(p, os.W_OK)):
        raise OutputExistsError(f"{flag} {str(path)!r} cannot be written ({str(folder)!r} is not a writable "
                                "directory); choose another path")
    return p


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only if the ``with`` body succeeds.

    On failure (any exception, including KeyboardInterrupt) the temporary directory is removed and ``path`` is
    untouched. With ``overwrite`` an existing ``path`` is swapped out only after the new content is complete. An
    existing *empty* directory (a mount point, say) is filled in place, never renamed. A location that cannot be
    written is refused in one line (OutputExistsError) before anything is created.
    """
    final = Path(path).absolute()
    in_place = _empty_dir(final)
    if final.exists() and not overwrite and not in_place:
        raise OutputExistsError(f"{str(final)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    try:
        if in_place:
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final))
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as e:
        raise OutputExistsError(f"cannot write {str(final)!r} ({e.strerror or e}); choose a writable output "
                                "path") from None
    moved: list[Path] = []
    try:
        yield tmp
        _fsync_dir(tmp)
        if in_place:
            for child in list(tmp.iterdir()):
                os.replace(child, final / child.name)
                moved.append(final / child.name)
            tmp.rmdir()
        elif final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            try:
                os.replace(final, old / "content")
            except OSError:
                old.rmdir()
                raise
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for m in moved:                       # the directory was empty: whatever is in it now is ours
            shutil.rmtree(m, ignore_errors=True) if m.is_dir() else m.unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's contents, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def acquire_lock(lock_file: str | os.PathLike, busy: str):
    """An exclusive, non-blocking ``flock`` on ``lock_file`` -> the open file holding it (closing it releases the
    lock, as does the process ending); OutputExistsError(``busy``) when another process holds it."""
    import fcntl

    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise OutputExistsError(busy) from None
    return f


@contextlib.contextmanager
def exclusive_lock(lock_file: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold :func:`acquire_lock` on ``lock_file`` for the ``with`` body."""
    f = acquire_lock(lock_file, busy)
    try:
        yield
    finally:
        f.close()


def remove_if_only(path: str | os.PathLike, names: set[str] | frozenset[str]) -> None:
    """Remove directory ``path`` when it holds nothing but files named in ``names`` (a lock file, say): what a run
    refused before its first output leaves behind."""
    p = Path(path)
    try:
        if p.is_dir() and {c.name for c in p.iterdir()} <= set(names):
            for c in p.iterdir():
                c.unlink()
            p.rmdir()
    except OSError:
        pass


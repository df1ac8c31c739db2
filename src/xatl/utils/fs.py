"""Crash-safe writes: nothing half-written is ever left where a later run would trust it.

Pattern: write into a temporary sibling (same filesystem), then ``os.replace`` into place. A directory that
is replaced keeps its previous version until the new one is complete. Also: :func:`sha256_file`, the one file
hash (asset manifests, pinned downloads, the benchmark files, model weights).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputExistsError

log = logging.getLogger(__name__)

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

    Called *before* any expensive work so that bad input fails fast. What a killed write left there is repaired
    first (:func:`recover`: an interrupted ``--overwrite`` is restored, a half-filled directory cleared).
    """
    p = Path(path)
    restored = any(n.startswith("restored") for n in recover(p))
    ours = p.is_dir() and any((p / m).exists() for m in owned)
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"output path {str(p)!r} is a file; choose a directory path")
    if ours and not overwrite:
        how = " (restored from an interrupted --overwrite)" if restored else ""
        raise OutputExistsError(f"output directory {str(p)!r} already holds {what}{how}; pass --overwrite to replace "
                                "it")
    if p.is_dir() and any(p.iterdir()) and not ours:
        raise OutputExistsError(f"output directory {str(p)!r} holds files that are not {what}; choose a new or "
                                f"empty directory (--overwrite only replaces {what})")
    folder = _nearest_existing(p.absolute())
    if not _writable_dir(folder):
        raise OutputExistsError(f"output directory {str(p)!r} cannot be written ({str(folder)!r} is not a writable "
                                "directory); choose another path")
    return p


def check_not_input(out: str | os.PathLike, source: str | os.PathLike, flag: str) -> None:
    """Refuse an output directory that is the input ``source`` (given by ``flag``) under any spelling (a trailing
    slash, a relative path, a symlink), lies inside it or contains it: writing there would replace or change the
    input. A ``source`` that is not a local path (a hub id, an asset name) is not checked."""
    if not Path(source).expanduser().exists():
        return
    o, m = Path(out).expanduser().resolve(), Path(source).expanduser().resolve()
    if o == m:
        raise OutputExistsError(f"--out {str(out)!r} is the input {flag} {str(source)!r}; choose another directory "
                                "(the input stays as it is)")
    if m in o.parents:
        raise OutputExistsError(f"--out {str(out)!r} is inside the input {flag} {str(source)!r}; choose a directory "
                                "outside it")
    if o in m.parents:
        raise OutputExistsError(f"--out {str(out)!r} contains the input {flag} {str(source)!r}; choose a directory "
                                "that does not hold it")


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


COMPLETE = ".xatl-complete"
"""Written last into every directory :func:`atomic_directory` publishes: the files it holds and their sizes.
Loaders (:func:`publishing_problem`) refuse a directory whose files disagree with it."""
PARTIAL = ".xatl-partial"
"""Present while an existing empty directory (a mount point) is being filled in place; it names the files being
moved in and the process moving them. Loaders refuse a directory holding it; the next write there clears it."""
CHECKED_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".gguf", ".pt", ".pth", ".npz")
"""The files loaders hold to the ``COMPLETE`` record: the weights (other files are the user's to edit or drop)."""
STEPS = ("filled", "marked", "partial", "moved", "old-out", "new-in", "published")
"""The publishing steps, in order (an in-place fill: partial, moved...; a replacement: old-out, new-in)."""


def _step(name: str) -> None:
    """A publishing step was just completed. A no-op: the crash tests replace it to kill the process there."""


def _scratch_re(prefix: str) -> re.Pattern:
    """The names ``tempfile.mkdtemp(prefix=<prefix><pid>-)`` gives: nothing else is ever treated as xatl's scratch."""
    return re.compile(re.escape(prefix) + r"(\d+)-[A-Za-z0-9_]{8}$")


def _scratch(parent: Path, prefix: str) -> list[Path]:
    """xatl's scratch directories named ``<prefix><pid>-<8 random>`` in ``parent``, oldest name last."""
    pattern = _scratch_re(prefix)
    return sorted((p for p in parent.iterdir() if pattern.match(p.name) and p.is_dir() and not p.is_symlink()),
                  key=lambda p: p.stat().st_mtime, reverse=True) if parent.is_dir() else []


def _hold(directory: Path):
    """An exclusive ``flock`` on ``directory`` held by this process until the returned descriptor is closed: the
    sign that its writer is alive (pids repeat, in containers especially; a lock dies with its process)."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:                   # a filesystem without flock: write anyway (its scratch then looks dead)
        pass
    return fd


def _in_use(directory: Path) -> bool:
    """Whether a live process holds ``directory`` (:func:`_hold`)."""
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _single_names(names) -> list[str]:
    """The entries of a marker's file list that are plain names inside its directory (never a path out of it)."""
    return [n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n] \
        if isinstance(names, list) else []


def recover(path: str | os.PathLike) -> list[str]:
    """Undo what a killed :func:`atomic_directory` left around ``path`` -> one note per repair.

    * a replacement killed between its two renames: ``path`` is gone (or an empty directory) and its previous
      version sits in ``.NAME.old-PID-XXXXXXXX/content``: it is moved back; when ``path`` holds a complete record the
      swap finished and the aside copy goes;
    * an in-place fill killed half way (``PARTIAL`` inside ``path``): the files it had moved in are removed;
    * scratch directories no live process holds (``.NAME.tmp-PID-XXXXXXXX``) are removed.

    Only names of exactly the form ``tempfile.mkdtemp`` gave them are touched, and only when no live process holds
    them (a ``flock`` each writer keeps on its scratch).
    """
    final = Path(path).absolute()
    notes: list[str] = []
    parent = final.parent
    if not parent.is_dir():
        return notes
    for old in _scratch(parent, f".{final.name}.old-"):
        content = old / "content"
        if _in_use(old) or not content.is_dir():
            continue
        if not final.exists() or _empty_dir(final):
            os.replace(content, final)
            notes.append(f"restored {str(final)!r} from an interrupted --overwrite ({old.name})")
        elif publishing_problem(final) is None and (final / COMPLETE).is_file():
            pass                                # the swap finished: the aside copy is the old version
        else:
            continue                            # keep it: named by the loaders, for the user to decide
        shutil.rmtree(old, ignore_errors=True)
    for tmp in _scratch(parent, f".{final.name}.tmp-"):
        if not _in_use(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    if final.is_dir() and (final / PARTIAL).exists():
        record = _read_json(final / PARTIAL)
        held = [t for t in _scratch(final, ".tmp-") if _in_use(t)]
        if not held:
            for name in _single_names((record or {}).get("files") if isinstance(record, dict) else None):
                child = final / name
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
            (final / PARTIAL).unlink(missing_ok=True)
            for tmp in _scratch(final, ".tmp-"):
                shutil.rmtree(tmp, ignore_errors=True)
            notes.append(f"removed the half-written files of an interrupted write into {str(final)!r}")
    for note in notes:
        log.warning("%s", note)
    return notes


def publishing_problem(path: str | os.PathLike) -> str | None:
    """Why the directory at ``path`` must not be loaded (None: nothing against it), for the loaders' one line.

    Refused: a directory still marked ``PARTIAL`` (a fill was interrupted), one whose weight files disagree with
    its ``COMPLETE`` record (missing, or another size: cut short by a copy or a full disk), and a missing ``path`` whose previous version an interrupted
    ``--overwrite`` left aside (named, so it can be found). Directories without a record (older xatl, other tools)
    pass: the weight checks of the loaders still apply.
    """
    p = Path(path).expanduser()
    if not p.exists():
        olds = [o / "content" for o in _scratch(p.absolute().parent, f".{p.name}.old-") if (o / "content").exists()]
        if olds:
            return (f"{str(path)!r} is missing: an interrupted --overwrite left its previous version in "
                    f"{str(olds[0])!r}; rerun the command that wrote it (it restores it) or move that folder back")
        return None
    if not p.is_dir():
        return None
    if (p / PARTIAL).exists():
        return (f"{str(path)!r} is incomplete (writing it was interrupted); rerun the command that wrote it, which "
                "clears it first")
    if not (p / COMPLETE).exists():
        return None
    record = _read_json(p / COMPLETE)
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return (f"{str(path)!r} has an unreadable {COMPLETE} record; rerun the command that wrote it with "
                f"--overwrite, or delete {COMPLETE} if you changed the files on purpose")
    for rel, size in files.items():
        if not isinstance(rel, str) or not rel.endswith(CHECKED_SUFFIXES) or ".." in Path(rel).parts:
            continue                  # a user may drop a report or edit a tokenizer; weights cut short are refused
        f = p / rel
        actual = f.stat().st_size if f.is_file() else None
        if actual != size:
            what = "is missing" if actual is None else f"has {actual} bytes, not {size}"
            return (f"{str(path)!r} is incomplete or was changed after xatl wrote it ({rel} {what}); rerun the "
                    f"command that wrote it with --overwrite, or delete {COMPLETE} if you changed the weights on "
                    "purpose")
    return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_record(d: Path) -> None:
    """Write ``COMPLETE`` (every file under ``d`` and its size) into ``d``, last."""
    files = {p.relative_to(d).as_posix(): p.stat().st_size for p in sorted(d.rglob("*"))
             if p.is_file() and p.name != COMPLETE}
    _write_synced(d / COMPLETE, json.dumps({"files": files}, indent=1).encode())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only if the ``with`` body succeeds.

    On failure (any exception, including KeyboardInterrupt) the temporary directory is removed and ``path`` is
    untouched. With ``overwrite`` an existing ``path`` is swapped out only after the new content is complete. An
    existing *empty* directory (a mount point, say) is filled in place, never renamed, under a ``PARTIAL`` marker.
    The content gets a ``COMPLETE`` record, written last. A location that cannot be written is refused in one line
    (OutputExistsError) before anything is created. A kill -9 at any step leaves either the old or the new
    content, or something loaders refuse and the next call repairs (:func:`recover`).
    """
    final = Path(path).absolute()
    recover(final)
    in_place = _empty_dir(final)
    if final.exists() and not overwrite and not in_place:
        raise OutputExistsError(f"{str(final)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    pid = os.getpid()
    try:
        if in_place:
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{pid}-", dir=final))
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{pid}-", dir=final.parent))
    except OSError as e:
        raise OutputExistsError(f"cannot write {str(final)!r} ({e.strerror or e}); choose a writable output "
                                "path") from None
    held = [_hold(tmp)]                         # released when this call ends, or when the process dies
    moved: list[Path] = []
    try:
        yield tmp
        _step("filled")
        _write_record(tmp)
        _fsync_dir(tmp)
        _step("marked")
        if in_place:
            children = sorted((c for c in tmp.iterdir() if c.name != COMPLETE), key=lambda c: c.name)
            names = [c.name for c in children] + [COMPLETE]
            _write_synced(final / PARTIAL, json.dumps({"pid": pid, "files": names}).encode())
            moved.append(final / PARTIAL)
            _step("partial")
            for child in children:
                os.replace(child, final / child.name)
                moved.append(final / child.name)
                _step("moved")
            os.replace(tmp / COMPLETE, final / COMPLETE)
            moved.append(final / COMPLETE)
            _step("moved")
            _fsync_entries(final)
            (final / PARTIAL).unlink()
            tmp.rmdir()
        elif final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{pid}-", dir=final.parent))
            held.append(_hold(old))
            try:
                os.replace(final, old / "content")
            except OSError:
                old.rmdir()
                raise
            _step("old-out")
            os.replace(tmp, final)
            _step("new-in")
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_entries(final.parent)
        _step("published")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for m in reversed(moved):             # the directory was empty: whatever is in it now is ours
            shutil.rmtree(m, ignore_errors=True) if m.is_dir() else m.unlink(missing_ok=True)
        raise
    finally:
        for fd in held:
            os.close(fd)


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


def finite_json(value, where: str = "", found: dict | None = None):
    """``value`` with every NaN or infinite float replaced by None (valid JSON); ``found`` collects
    ``{"key.path": "nan" | "inf" | "-inf"}`` for each one replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found[where or "."] = str(value)
        return None
    if isinstance(value, dict):
        return {k: finite_json(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


NON_FINITE = "non_finite"
"""The key under which :func:`json_text` names the values it wrote as null because they were NaN or infinite."""


def json_text(obj, indent: int | None = 2, default=None) -> str:
    """JSON that never holds NaN or Infinity (invalid JSON): such a value is written as null, and a dict gets a
    ``non_finite`` entry naming each one and what it was (``{"perplexity": "nan"}``): null plus a reason."""
    if default is not None:
        obj = json.loads(json.dumps(obj, default=default))
    found: dict = {}
    clean = finite_json(obj, found=found)
    if found and isinstance(clean, dict):
        clean = {**clean, NON_FINITE: {**(clean.get(NON_FINITE) or {}), **found}}
    return json.dumps(clean, indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write ``obj`` as JSON (:func:`json_text`: NaN/inf as null, named under ``non_finite``) crash-safely."""
    atomic_write_bytes(path, (json_text(obj, indent=indent) + "\n").encode())


def _fsync_entries(directory: Path) -> None:
    """fsync a directory itself, so the renames in it survive a power loss."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


"""The asset cache: ``$XATL_HOME/assets/<name>/``, each directory trusted only through its ``manifest.json``.

A fetch builds the asset in a temporary sibling directory, records every file's size and sha256 in
``manifest.json`` (written last), then renames the directory into place. A directory whose manifest is missing,
unreadable, of another recipe, or disagrees with the files on disk is never used: the next fetch rebuilds it.
Concurrent fetches of one asset (several processes, pytest-xdist workers) are serialised by a lock file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import AssetError
from ..utils.fs import atomic_directory, atomic_write_json
from .clients import file_record, sha256_file
from .registry import ASSETS, Asset, get_asset

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
"""Version of the manifest layout."""


def xatl_home() -> Path:
    """The root of xatl's caches: ``$XATL_HOME``, else ``~/.cache/xatl``."""
    env = os.environ.get("XATL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xatl"


def asset_dir(name: str, home: str | os.PathLike | None = None) -> Path:
    """Where asset ``name`` lives (whether or not it is fetched)."""
    get_asset(name)
    return Path(home).expanduser() / "assets" / name if home is not None else xatl_home() / "assets" / name


def read_manifest(path: Path) -> dict | None:
    """The manifest of an asset directory, or None when it is absent or unreadable."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_cached(asset: Asset, path: Path, full: bool = False) -> str | None:
    """Why ``path`` cannot be trusted as ``asset`` (None: it can). ``full`` also re-hashes every file."""
    if not path.is_dir():
        return "not fetched"
    manifest = read_manifest(path)
    if manifest is None:
        return "no readable manifest.json"
    if manifest.get("name") != asset.name or manifest.get("format") != FORMAT:
        return "manifest of another asset or format"
    if manifest.get("recipe") != asset.recipe or manifest.get("source") != asset.source:
        return f"built by another recipe/source ({manifest.get('source')}, recipe {manifest.get('recipe')})"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "manifest lists no files"
    for rel, rec in files.items():
        p = path / rel
        try:
            if not p.is_file() or p.stat().st_size != rec["size"]:
                return f"{rel} is missing or has the wrong size"
            if full and sha256_file(p) != rec["sha256"]:
                return f"{rel} does not match its sha256"
        except (OSError, KeyError, TypeError):
            return f"{rel} cannot be checked"
    return None


def is_cached(name: str, home: str | os.PathLike | None = None, verify: bool = False) -> bool:
    """True when ``name`` is fetched and its manifest agrees with the files (sizes; sha256 too with ``verify``)."""
    return check_cached(get_asset(name), asset_dir(name, home), full=verify) is None


@contextlib.contextmanager
def _lock(root: Path, name: str):
    """Exclusive lock for building ``name`` (released when the process dies, so never stale)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _say(progress: bool, message: str) -> None:
    log.info(message)
    if progress:
        print(message, file=sys.stderr, flush=True)


def _remove_leftovers(root: Path, name: str) -> None:
    """Scratch directories of killed fetches (safe: the caller holds the lock)."""
    for p in root.glob(f".{name}.*-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def fetch(name: str, *, home: str | os.PathLike | None = None, force: bool = False, progress: bool = True,
          verify: bool = False) -> Path:
    """The directory of asset ``name``, fetched and built first when it is not cached (or ``force``).

    A cache hit is reported as such. ``verify`` re-hashes a cached copy's files against its manifest (else
    sizes are checked). Raises AssetError for an unknown name, a missing client or an unreachable registry.
    """
    asset = get_asset(name)
    path = asset_dir(name, home)
    why = check_cached(asset, path, full=verify)
    if why is None and not force:
        _say(progress, f"{name}: cached at {path}")
        return path
    with _lock(path.parent, name):
        why = check_cached(asset, path, full=verify)
        if why is None and not force:               # another process built it while we waited
            _say(progress, f"{name}: cached at {path}")
            return path
        _remove_leftovers(path.parent, name)
        if why not in (None, "not fetched"):
            _say(progress, f"{name}: cached copy not trusted ({why}); fetching again")
        _say(progress, f"{name}: fetching {asset.source} ...")
        start = time.perf_counter()
        with atomic_directory(path, overwrite=True) as tmp:
            work = path.parent / f".{name}.work-{os.getpid()}"
            work.mkdir()
            try:
                info = asset.build(work, tmp, progress)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            manifest = _manifest(asset, tmp, info, time.perf_counter() - start)
            atomic_write_json(tmp / MANIFEST, manifest)
            os.chmod(tmp, 0o755)                    # mkdtemp makes it private; a cache is readable by all
        _say(progress, f"{name}: fetched into {path} in {manifest['seconds']:.1f} s "
             f"({_human(sum(f['size'] for f in manifest['files'].values()))})")
    return path


def _manifest(asset: Asset, out: Path, info: dict, seconds: float) -> dict:
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(out).as_posix()] = file_record(p)
    if not files:
        raise AssetError(f"building {asset.name} produced no files; retry with --force")
    return {"name": asset.name, "kind": asset.kind, "format": FORMAT, "recipe": asset.recipe,
            "source": asset.source, "version": info.get("version"), "license": asset.license,
            "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2), "files": files, "source_files": info.get("source_files", {}),
            "stats": info.get("stats", {})}


def donor_asset_path(name: str) -> Path | None:
    """None when ``name`` is not a donor asset; else its HF model directory (fetched first if needed)."""
    asset = ASSETS.get(name) if isinstance(name, str) else None
    if asset is None or asset.kind != "donor":
        return None
    return fetch(name, progress=True)


def list_assets(home: str | os.PathLike | None = None) -> list[dict]:
    """One row per asset: name, kind, description, source, cached, size (bytes, when cached), path."""
    rows = []
    for name, asset in ASSETS.items():
        path = asset_dir(name, home)
        cached = check_cached(asset, path) is None
        manifest = read_manifest(path) if cached else None
        size = sum(f["size"] for f in manifest["files"].values()) if manifest else None
        rows.append({"name": name, "kind": asset.kind, "description": asset.description, "source": asset.source,
                     "cached": cached, "size": size, "path": str(path),
                     "fetched_at": manifest.get("fetched_at") if manifest else None})
    return rows


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"

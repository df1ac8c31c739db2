"""Shared data of the evaluation tests: hand-written multiple-choice/LAMBADA documents, a character tokenizer
and an offline eval-suite writer."""

from __future__ import annotations

import gzip
import hashlib
import json
import string
from pathlib import Path

EOS = "<|endoftext|>"

# (context, choices, gold): short, so that the tiny models (max 512 positions) hold them whole
MC_DOCS = {
    "piqa": [
        ("Goal: open a jar\nAnswer:", ["twist the lid", "hit it with a fish"], 0),
        ("Goal: dry wet shoes\nAnswer:", ["put paper inside", "pour water in"], 0),
        ("Goal: cool soup fast\nAnswer:", ["add ice cubes", "heat it"], 0),
        ("Goal: keep bread fresh\nAnswer:", ["leave it open", "seal the bag"], 1),
        ("Goal: see at night\nAnswer:", ["use a lamp", "close eyes"], 0),
    ],
    "arc_easy": [
        ("Question: What do plants need to grow?\nAnswer:", ["light", "sand", "plastic", "noise"], 0),
        ("Question: Which is a liquid?\nAnswer:", ["rock", "water", "wood"], 1),
        ("Question: What melts ice?\nAnswer:", ["cold", "heat", "dark", "wind", "salt water"], 1),
        ("Question: Which animal can fly?\nAnswer:", ["dog", "fish", "bird", "cow"], 2),
    ],
    "hellaswag": [
        ("Cooking: A man cracks an egg. He", ["fries it.", "paints the wall blue.", "sings.", "a"], 0),
        ("Sports: A girl kicks a ball. She", ["scores a goal.", "eats soup.", "reads a book quietly.", "x y"], 0),
    ],
}
WINOGRANDE = [  # (prefix, options, rest, gold)
    ("The cup was bigger than the glass so the", ["cup", "glass"], "held more water.", 0),
    ("Ann gave Bea a gift because", ["Ann", "Bea"], "had a birthday.", 1),
    ("The ball broke the window because the", ["ball", "window"], "was fragile.", 1),
]
LAMBADA = [
    ("He opened the door and saw his old", "friend"),
    ("She poured the tea into the", "cup"),
    ("The cat chased the", "mouse"),
    ("After the long walk they were very", "tired"),
]


def char_tokenizer():
    """A character-level fast tokenizer: 95 printable ASCII characters and newline, <unk> and an EOS (98 ids)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {EOS: 0, "<unk>": 1, "\n": 2}
    for ch in string.printable[:95]:
        vocab.setdefault(ch, len(vocab))
    assert len(vocab) <= 99
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, unk_token="<unk>")


def suite_rows() -> dict[str, list[dict]]:
    """Request rows per task, in the OLMo ``requests.jsonl.gz`` layout."""
    rows: dict[str, list[dict]] = {}
    for task, docs in MC_DOCS.items():
        rows[task] = [{"request_type": "loglikelihood", "doc": {"query": ctx, "choices": ch, "gold": gold},
                       "request": {"context": ctx, "continuation": " " + c}, "idx": i, "task_name": task,
                       "doc_id": d, "native_id": d, "label": gold}
                      for d, (ctx, ch, gold) in enumerate(docs) for i, c in enumerate(ch)]
    rows["winogrande"] = [{"doc": {"option1": opts[0], "option2": opts[1]},
                           "request": {"context": f"{pre} {o}", "continuation": " " + rest},
                           "idx": i, "task_name": "winogrande", "doc_id": d, "native_id": None, "label": gold}
                          for d, (pre, opts, rest, gold) in enumerate(WINOGRANDE) for i, o in enumerate(opts)]
    rows["lambada"] = [{"doc": {"id": d, "query": ctx, "choices": [w]}, "request": {"context": ctx,
                        "continuation": " " + w}, "idx": 0, "task_name": "lambada", "doc_id": d, "native_id": d,
                        "label": [w]} for d, (ctx, w) in enumerate(LAMBADA)]
    return rows


def write_suite(root: Path, rows: dict[str, list[dict]] | None = None) -> Path:
    """Write a suite directory: <task>/requests.jsonl.gz, tasks.json, manifest.json."""
    rows = suite_rows() if rows is None else rows
    tasks, files = {}, {}
    for task, lines in rows.items():
        path = root / task / "requests.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r) + "\n" for r in lines).encode()
        path.write_bytes(gzip.compress(data, mtime=0))
        tasks[task] = {"variant": "bpb_0shot" if task == "lambada" else "rc_0shot",
                       "documents": len({r["doc_id"] for r in lines})}
        files[f"{task}/requests.jsonl.gz"] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (root / "tasks.json").write_text(json.dumps(tasks))
    (root / "manifest.json").write_text(json.dumps({"name": "evalsuite", "files": files}))
    return root

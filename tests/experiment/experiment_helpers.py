"""Helpers of the experiment tests: a tiny recipe, small documents, and a small honest trainer that follows the
trainer protocol of :mod:`xatl.experiment.training` (injected through ``run_experiment(trainer=...)``)."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import torch

WORDS = ("the cat sat on a mat while the dog ran after a red ball in the park near an old river python code "
         "reads data from files and writes blocks of tokens to disk quickly").split()


def write_documents(path: Path, n: int = 120, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [json.dumps({"text": f"Note {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
                         + "."}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


TINY = {
    "name": "tiny",
    "description": "A minute-sized study for the tests.",
    "device": "cpu",
    "tokenizer": {"vocab_size": 300},
    "data": {"sources": ["wiki"], "block_size": 32, "max_documents": 120, "val_documents": 6},
    "donor": {"architecture": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                               "intermediate_size": 64, "max_position_embeddings": 256},
              "train": {"max_steps": 30, "micro_batch_size": 8, "lr": 0.003, "warmup_steps": 3, "eval_every": 10,
                        "eval_batches": 2, "options": {"tensorboard": False, "save_every": 0}}},
    "train": {"max_steps": 12, "micro_batch_size": 8, "lr": 0.003, "warmup_steps": 2, "eval_every": 4,
              "eval_batches": 2, "options": {"tensorboard": False, "save_every": 0}},
    "students": [
        {"name": "xatl", "mixers": ["retention", "gla"], "unfreeze": "step:6"},
        {"name": "scratch", "mixers": ["retention", "gla"], "copy": "none"},
        {"name": "no-o_proj", "mixers": ["retention"], "copy": "embed,norms,mlp,lm_head", "unfreeze": "step:6",
         "group": "transfer"},
        {"name": "hybrid", "mixers": ["retention"], "attention_layers": [1], "unfreeze": "step:6",
         "group": "hybrid"},
        {"name": "frozen", "mixers": ["retention"], "unfreeze": "never", "group": "freeze", "seeds": [0, 1]},
    ],
    "eval": {"tasks": ["ppl", "piqa"], "limit": 4, "ppl_documents": 3, "batch_size": 8},
    "profile": {"contexts": [16, 48], "decode_steps": 2, "warmup_steps": 1, "prefill_chunk": 32},
}


def tiny_raw(**changes) -> dict:
    raw = copy.deepcopy(TINY)
    raw.update(changes)
    return raw


class TinyTrainer:
    """AdamW with warm-up and cosine decay on the blocks, in order from a seed-dependent offset; frozen copied
    weights (by the transfer report) until the unfreeze step; writes metrics.jsonl and final/. Records its jobs.
    ``fail`` = a substring of a job's out_dir at which it raises after writing a few metrics (a killed run)."""

    def __init__(self, fail: str | None = None):
        self.jobs: list = []
        self.fail = fail

    def __call__(self, job, dataset) -> dict:
        from transformers import AutoModelForCausalLM

        import xatl  # noqa: F401  (registers the student with the Auto classes)

        self.jobs.append(job)
        out = Path(job.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(job.seed)
        model = AutoModelForCausalLM.from_pretrained(job.model).train()
        frozen = _copied(Path(job.model)) if job.freeze else set()
        unfreeze_at = int(job.unfreeze.split(":")[1]) if job.unfreeze.startswith("step:") else None
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        opt = torch.optim.AdamW(model.parameters(), lr=job.lr, betas=(0.9, 0.95), weight_decay=0.1)
        train, val = dataset["train"], dataset["validation"]
        bs, offset = job.micro_batch_size, job.seed * 7
        rows = []
        for step in range(1, job.max_steps + 1):
            if unfreeze_at is not None and step == unfreeze_at + 1:
                for p in model.parameters():
                    p.requires_grad_(True)
            lr = job.lr * min(1.0, step / max(1, job.warmup_steps)) * \
                0.5 * (1 + math.cos(math.pi * min(1.0, step / job.max_steps)))
            for g in opt.param_groups:
                g["lr"] = lr
            start = (offset + step * bs) % max(1, len(train) - bs)
            ids = torch.tensor(train[start:start + bs]["input_ids"])
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            row = {"step": step, "tokens": step * ids.numel(), "loss": loss.item(), "lr": lr,
                   "frozen": bool(frozen) and (unfreeze_at is None or step <= unfreeze_at)}
            if step % job.eval_every == 0 or step == job.max_steps:
                row["val_loss"] = _val_loss(model, val, bs, job.eval_batches)
            rows.append(row)
            (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            if self.fail and self.fail in job.out_dir and step == 3:
                raise RuntimeError("simulated kill")
        model.save_pretrained(out / "final")
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(job.model).save_pretrained(out / "final")
        return {"steps": job.max_steps}


def _copied(model_dir: Path) -> set[str]:
    report = model_dir / "transfer_report.json"
    if not report.is_file():
        return set()
    data = json.loads(report.read_text())
    return {n for n, rec in data.get("student_tensors", {}).items() if rec.get("status") == "copied"}


@torch.no_grad()
def _val_loss(model, val, bs: int, batches: int) -> float:
    model.eval()
    losses = []
    for b in range(batches):
        chunk = val[b * bs:(b + 1) * bs]["input_ids"]
        if not chunk:
            break
        ids = torch.tensor(chunk)
        losses.append(model(input_ids=ids, labels=ids).loss.item())
    model.train()
    return sum(losses) / len(losses)

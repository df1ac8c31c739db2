"""What a user sees: metrics.jsonl, TensorBoard events, the progress bar, and the final summary."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from ..utils.fs import atomic_write_bytes, json_text

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SCALARS = ("loss", "val_loss", "lr", "lr_copied", "grad_norm", "tokens_per_s", "kd_loss", "align_loss")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics.jsonl (a torn last line, from a killed run, is skipped)."""
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def step_records(path: str | os.PathLike) -> list[dict]:
    """The records of optimizer steps (step >= 1): :func:`read_metrics` without the step-0 evaluation record
    (``{"step": 0, "val_loss": ..., "tokens": 0}``, written before training whenever there is a validation split)."""
    return [r for r in read_metrics(path) if r.get("step", 0) >= 1]


class MetricsWriter:
    """Appends one JSON record per line (flushed) and mirrors the scalars to TensorBoard.

    On resume from step S the records after S (written by the interrupted run after its last checkpoint) are
    dropped first, so the file reads as one uninterrupted run.
    """

    def __init__(self, out_dir: Path, tensorboard: bool, resume_step: int | None):
        self.path = Path(out_dir) / METRICS_FILE
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        atomic_write_bytes(self.path, "".join(json_text(r, indent=None) + "\n" for r in kept).encode())
        self.file = open(self.path, "a")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step else None)

    def write(self, record: dict) -> None:
        self.file.write(json_text(record, indent=None) + "\n")
        self.file.flush()
        if self.tb is not None:
            step = record["step"]
            for key in SCALARS:
                value = record.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(f"{record.get('stage', 'lm')}/{key}", value, step)
            self.tb.add_scalar("frozen", float(bool(record.get("frozen"))), step)
            for i, err in enumerate(record.get("align_err") or []):
                self.tb.add_scalar(f"align/layer_{i}", err, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True,
                desc="train")


def postfix(record: dict, has_copied: bool = True, lora: bool = False) -> dict:
    """The progress bar's fields: loss, tokens/s, learning rate, and what the copied weights do (align, frozen,
    unfrozen, lora; absent when nothing was copied, e.g. a from-scratch model)."""
    out = {"loss": f"{record['loss']:.4f}", "tok/s": f"{record['tokens_per_s']:,.0f}", "lr": f"{record['lr']:.2e}"}
    if has_copied:
        out["copied"] = ("align" if record["stage"] == "align" else "lora" if lora
                         else "frozen" if record["frozen"] else "unfrozen")
    if record.get("val_loss") is not None:
        out["val"] = f"{record['val_loss']:.4f}"
    return out


def format_summary(summary: dict) -> str:
    """A few human lines of summary.json."""
    lines = [f"trained {summary['final_step']} steps, {summary['tokens']:,} tokens, "
             f"{summary['flops']:.3g} FLOPs in {summary['wall_seconds']:.1f} s"]
    for name, s in summary["stages"].items():
        if s["steps"]:
            lines.append(f"  {name:5s}: {s['steps']} steps, {s['tokens']:,} tokens, {s['flops']:.3g} FLOPs, "
                         f"{s['tokens'] / max(s['seconds'], 1e-9):,.0f} tok/s")
    loss = summary.get("train_loss")
    val = summary.get("val_loss")
    lines.append(f"  final train loss {loss:.4f}" if loss is not None else "  no train loss")
    if val is not None:
        lines[-1] += f", validation loss {val:.4f}"
    after = summary.get("unfrozen_after")
    if after == 0:
        lines.append("  copied weights trained from the start")
    elif after is not None:
        lines.append(f"  copied weights unfrozen after LM step {after}")
    lines.append(f"  model: {summary['final_dir']}")
    return "\n".join(lines)

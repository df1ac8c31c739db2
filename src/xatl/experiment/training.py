"""What the experiment asks of a trainer, and the default one (:func:`xatl.train.train`).

A trainer is any callable ``trainer(job: TrainJob, dataset: DatasetDict) -> dict | None`` that trains the model
directory ``job.model`` and writes into ``job.out_dir``:

* ``metrics.jsonl``: one JSON object per line with at least ``step`` and, at evaluations, ``val_loss``
  (the trainer's own keys ``tokens``, ``loss``, ``lr``, ``wall``, ``frozen`` are used when present);
* ``final/``: the trained model (a loadable directory with its tokenizer).

Called again on an ``out_dir`` it left unfinished (a killed run), it resumes from its own checkpoints.
Tests inject small trainers through this protocol.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainingError
from ..utils.fs import atomic_directory
from .schema import ArchitectureSpec

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
FINAL = "final"


@dataclass
class TrainJob:
    """One training run, as the experiment describes it to a trainer: a partial :class:`xatl.train.TrainConfig`
    (``config``, whose keys are its field names) and where to run. A trainer reads the settings it needs as
    attributes, under the TrainConfig names (``job.max_steps``, ``job.lr``, ``job.unfreeze``...)."""

    config: dict
    """TrainConfig fields: ``model`` (a converted student or a freshly initialised donor), ``out_dir`` (where
    ``metrics.jsonl``, checkpoints and ``final/`` go), the recipe's budget and options, ``seed``, ``freeze``
    (``copied`` or ``none``) and ``unfreeze``."""
    device: str = "auto"
    """Where the recipe asks models to run (a trainer may pick its own, e.g. through ``accelerate``)."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def freeze(self) -> bool:
        """Whether the copied weights (named by the model's transfer report) start frozen."""
        return self.config.get("freeze", "none") == "copied"

    def __getattr__(self, name: str):
        config = self.__dict__.get("config") or {}
        if name in config:
            return config[name]
        raise AttributeError(f"TrainJob has no setting {name!r} (its config holds: {', '.join(config)})")


def default_trainer(job: TrainJob, dataset) -> dict:
    """Train with :func:`xatl.train.train`; a rerun on the same ``out_dir`` continues from its latest checkpoint
    (``resume="auto"``). The device is the one ``accelerate`` picks (CUDA when available)."""
    from ..train import TrainConfig, train

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(job.config) - names)
    if unknown:
        raise TrainingError(f"train.options: unknown TrainConfig field(s) {', '.join(unknown)}; valid: "
                            f"{', '.join(sorted(names))}")
    result = train(TrainConfig(**{"resume": "auto", **job.config}), dataset=dataset, progress=job.progress)
    return _as_dict(result)


def _as_dict(result) -> dict:
    if result is None:
        return {}
    if dataclasses.is_dataclass(result):
        out = {}
        for f in dataclasses.fields(result):
            v = getattr(result, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else v
        return json.loads(json.dumps(out, default=str))
    return dict(result) if isinstance(result, dict) else {"result": str(result)}


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The rows of ``out_dir/metrics.jsonl`` (a torn last line, from a killed run, is ignored)."""
    path = Path(out_dir) / METRICS
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def val_curve(rows: list[dict]) -> list[tuple[int, float]]:
    """(step, val_loss) of every evaluation, in step order (the last value of a repeated step wins)."""
    points = {}
    for r in rows:
        v = r.get("val_loss")
        if isinstance(v, (int, float)) and math.isfinite(v):
            points[int(r["step"])] = float(v)
    return sorted(points.items())


def unfreeze_step(rows: list[dict]) -> int | None:
    """The first step logged with ``frozen`` false after one logged frozen (None: never unfrozen / not logged)."""
    was_frozen = False
    for r in sorted(rows, key=lambda r: r["step"]):
        frozen = r.get("frozen")
        if frozen:
            was_frozen = True
        elif frozen is not None and was_frozen:
            return int(r["step"])
    return None


def init_scratch_donor(arch: ArchitectureSpec, tokenizer, out_dir: str | Path, seed: int) -> Path:
    """A randomly initialised Llama-style donor with ``tokenizer``, saved (atomically) to ``out_dir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=arch.hidden_size, num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads or arch.num_attention_heads,
        intermediate_size=arch.intermediate_size, max_position_embeddings=arch.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": arch.rope_theta},
        tie_word_embeddings=arch.tie_word_embeddings, initializer_range=arch.initializer_range,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos, eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("initialised a %.2fM-parameter Llama donor in %s", model.num_parameters() / 1e6, out_dir)
    return Path(out_dir)

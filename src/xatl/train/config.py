"""The run arguments of ``xatl train``: one dataclass (with three small option groups), one source of truth.

The defaults are the paper's recipe: AdamW (0.9, 0.95), weight decay 0.1, clipping 1.0, cosine with warm-up;
copied weights frozen at first and released by the Loss Improvement Threshold rule, then ramped up to the main
schedule, both as in the paper's code (``xatl.train.schedule``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError
from ..utils.settings import check_ranges, setting
from .schedule import PAPER_REWARM, paper_fraction, parse_unfreeze

FREEZE_CHOICES = ("copied", "none")
SHARDING_CHOICES = ("none", "fsdp")

# the groups of ``xatl train --help``, in order (each field names its own)
GROUPS = WHAT, OPTIM, FREEZING, BEYOND, OUTPUTS = ("what to train", "optimisation", "freezing (the paper's recipe)",
                                                   "beyond the paper", "outputs")


@dataclass
class AlignConfig:
    """Attention alignment before LM training (LoLCATs / RADLADS stage 1): per layer, the student mixer's output
    is trained (MSE) to match the donor attention's output on the same inputs. Needs the donor."""

    steps: int = setting(0, min=0, whole=True)
    """Optimizer steps of the alignment stage (0: no alignment)."""
    lr: float = setting(1e-3, above=0)
    """Peak learning rate of the alignment stage (cosine with warm-up, decaying to ``min_lr`` of it)."""
    warmup_steps: int | None = setting(None, min=0)
    """Warm-up steps of the alignment stage (None: a tenth of ``steps``)."""


@dataclass
class KDConfig:
    """Knowledge distillation from the donor's logits, mixed into the LM loss:
    ``loss = (1 - weight) * CE + weight * T^2 * KL(softmax(donor / T) || softmax(student / T))``."""

    weight: float = setting(0.0, min=0, max=1)
    """Weight of the KL term in [0, 1] (0: no distillation)."""
    temperature: float = setting(2.0, above=0)
    """Softmax temperature T of both distributions."""


@dataclass
class LoRAConfig:
    """LoRA adapters (via ``peft``) on the copied linear weights, *instead of* unfreezing them: the copied weights
    stay frozen for the whole run, and the adapters train from the unfreeze point on (``freeze="none"``: from
    the start), with the copied group's learning rate and warm-up. ``final/`` holds the merged weights."""

    rank: int = setting(0, min=0, whole=True)
    """Rank r of the adapters (0: no LoRA)."""
    alpha: float | None = None
    """LoRA scaling numerator (scale = alpha / r; None: 2 * r)."""
    dropout: float = setting(0.0, min=0, below=1)
    """Dropout on the adapters' input."""


@dataclass
class TrainConfig:
    """Everything a training run needs. ``xatl.train.train(cfg)`` runs it; ``xatl train`` builds it from flags."""

    model: str = setting(group=WHAT)
    """The model to train: a student directory from ``xatl convert`` (with ``transfer_report.json``), or any Hugging
    Face causal-LM directory (then use ``freeze="none"``)."""
    out_dir: str = setting(group=WHAT, flag="--out")
    """Where the run writes metrics.jsonl, tensorboard/, checkpoints/step-N/, final/ and summary.json."""
    data: object | None = setting(None, flag=None)
    """A ``xatl.data.DataConfig`` (tokenized with the model's tokenizer), used when ``train()`` gets no dataset."""
    donor: str | None = setting(None, group=BEYOND)
    """The donor model (directory, .gguf or fetched asset name) for ``align`` and ``kd`` (None: the donor recorded
    in the student's transfer report, when that path exists)."""
    max_steps: int = setting(1000, min=1, whole=True, group=OPTIM, flag="--steps")
    """Optimizer steps of the LM stage (the alignment stage adds ``align.steps`` before it)."""
    micro_batch_size: int = setting(8, min=1, whole=True, group=OPTIM, flag="--batch-size")
    """Blocks per forward/backward pass on each process."""
    grad_accum: int = setting(1, min=1, whole=True, group=OPTIM)
    """Micro-batches per optimizer step on each process (global batch = micro_batch_size * grad_accum * processes)."""
    lr: float = setting(1e-3, above=0, group=OPTIM)
    """Peak learning rate of the fresh (non-copied) parameters."""
    min_lr: float = setting(0.1, min=0, max=1, group=OPTIM)
    """Learning rate at the end of the cosine decay, as a fraction of the peak."""
    warmup_steps: int | None = setting(None, min=0, group=OPTIM)
    """Linear warm-up steps of the LM stage (None: min(100, max_steps // 10))."""
    weight_decay: float = setting(0.1, min=0, group=OPTIM)
    """AdamW weight decay, applied to matrices and embeddings (not to biases and norm weights)."""
    betas: tuple[float, float] = setting((0.9, 0.95), group=OPTIM)
    """AdamW betas."""
    clip: float = setting(1.0, min=0, group=OPTIM)
    """Gradient clipping (global L2 norm; 0: off)."""
    freeze: str = setting("copied", choices=FREEZE_CHOICES, group=FREEZING)
    """``copied``: the weights the transfer report lists as copied start frozen; ``none``: everything trains."""
    unfreeze: str = setting("lit:threshold=0.01,patience=1", group=FREEZING)
    """When frozen copied weights start training: ``never``, ``step:N``, ``lit:threshold=T,patience=P[,window=W]``
    (the paper's rule) or ``lit-consecutive:...`` (xatl's earlier variant); see ``xatl.train.schedule``."""
    unfreeze_lr: float | None = setting(None, min=0, group=FREEZING)
    """Peak learning rate of the copied weights whenever they train (after unfreezing, or from the start with
    ``freeze="none"``); they follow the main schedule. None: ``lr``, the paper's one schedule for all weights
    (``lr / 10`` with ``lit-consecutive``)."""
    unfreeze_warmup_steps: int | None = setting(None, min=0, group=FREEZING)
    """Ramp of the copied weights' learning rate from the unfreeze point up to the main schedule (None: the
    paper's 2,000 of 145,000 steps, i.e. max_steps / 72.5, at least 1; the LM warm-up with ``lit-consecutive``)."""
    align: AlignConfig = setting(factory=AlignConfig, group=BEYOND)
    """Attention-alignment stage (off by default)."""
    kd: KDConfig = setting(factory=KDConfig, group=BEYOND)
    """Knowledge distillation (off by default)."""
    lora: LoRAConfig = setting(factory=LoRAConfig, group=BEYOND)
    """LoRA on the copied weights instead of unfreezing them (off by default)."""
    eval_every: int = setting(100, min=0, group=OUTPUTS)
    """Validation every N steps (and at the end; 0: only at the end)."""
    eval_at: list[int] = setting([], group=OUTPUTS)
    """Further steps with a validation, besides every ``eval_every`` and the end (e.g. dense early points, so that
    a loss curve resolves where it falls fastest)."""
    eval_batches: int = setting(20, min=0, group=OUTPUTS)
    """Micro-batches of the validation split per evaluation (the same blocks every time; 0: no validation)."""
    save_every: int = setting(500, min=0, group=OUTPUTS)
    """Checkpoint every N steps (and at the end; 0: only at the end)."""
    keep_last: int = setting(3, min=1, group=OUTPUTS)
    """Checkpoints kept (older ones are deleted; the best by validation loss is always kept)."""
    log_every: int = setting(10, min=0, group=OUTPUTS)
    """Write a metrics record every N steps (steps with a validation or an unfreezing are always written)."""
    tensorboard: bool = setting(True, group=OUTPUTS)
    """Also write TensorBoard events to ``out_dir/tensorboard``."""
    bf16: bool | str = setting("auto", choices=(True, False, "auto"), group=OPTIM)
    """bf16 autocast: True, False, or ``auto`` (on when the accelerator supports bf16: CUDA with bf16)."""
    sharding: str = setting("none", choices=SHARDING_CHOICES, group=OPTIM)
    """``none``: each process holds the whole model (one process, or DDP); ``fsdp``: FSDP2 shards parameters,
    gradients and optimizer state over the processes (torchrun / accelerate launch; also chosen by accelerate's
    ``--use_fsdp --fsdp_version 2``). Losses match ``none`` to float32 rounding; see docs/training.md."""
    seed: int = setting(0, group=OPTIM)
    """Seed of the data order, LoRA initialisation and every RNG."""
    resume: bool | str = setting("auto", choices=(True, False, "auto"), group=OUTPUTS, switch=True)
    """``auto``: continue from the latest checkpoint in out_dir if there is one; True: must; False: start fresh
    (refused when out_dir already holds a run, unless ``overwrite``)."""
    overwrite: bool = setting(False, group=OUTPUTS)
    """Allow a fresh run (resume=False) to replace a run already in out_dir."""

    def __post_init__(self) -> None:
        for name, cls in (("align", AlignConfig), ("kd", KDConfig), ("lora", LoRAConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls(**value))
        if isinstance(self.data, dict):
            from ..data import DataConfig

            self.data = DataConfig(**self.data)
        self.betas = tuple(self.betas)
        self.eval_at = sorted(set(self.eval_at))
        self.validate()

    # ------------------------------------------------------------------ derived values
    @property
    def lm_warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else min(100, self.max_steps // 10)

    @property
    def earlier_variant(self) -> bool:
        """The unfreeze schedule is ``lit-consecutive``, whose defaults for the released weights are its own."""
        return parse_unfreeze(self.unfreeze).kind == "lit-consecutive"

    @property
    def copied_lr(self) -> float:
        if self.unfreeze_lr is not None:
            return self.unfreeze_lr
        return self.lr * 0.1 if self.earlier_variant else self.lr

    @property
    def copied_warmup(self) -> int:
        if self.unfreeze_warmup_steps is not None:
            return self.unfreeze_warmup_steps
        return self.lm_warmup if self.earlier_variant else paper_fraction(self.max_steps, PAPER_REWARM)

    @property
    def align_warmup(self) -> int:
        return self.align.warmup_steps if self.align.warmup_steps is not None else self.align.steps // 10

    @property
    def total_steps(self) -> int:
        return self.align.steps + self.max_steps

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and its valid values: each field's range is its metadata
        (``xatl.utils.settings``); the checks here are those across fields."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(bool(self.model), "model is required: a student directory from `xatl convert` or an HF model directory")
        need(bool(self.out_dir), "out_dir is required")
        spec = parse_unfreeze(self.unfreeze)
        problem = check_ranges(self)
        need(problem is None, str(problem))
        need(self.warmup_steps is None or self.warmup_steps <= self.max_steps,
             f"warmup_steps must be in 0..max_steps ({self.max_steps}), got {self.warmup_steps}")
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"betas must be two numbers in [0, 1), "
             f"got {self.betas}")
        need(not (self.lora.rank and self.freeze == "copied" and spec.kind == "never"),
             "lora with freeze='copied' and unfreeze='never' would never train the adapters; use unfreeze "
             "step:0 (adapters from the start) or another schedule")
        need(all(isinstance(s, int) and s >= 1 for s in self.eval_at), f"eval_at lists steps >= 1, got {self.eval_at}")

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict:
        d = asdict(self)
        if self.data is not None and hasattr(self.data, "to_dict"):
            d["data"] = self.data.to_dict()
        d["betas"] = list(self.betas)
        return d

    def trajectory_dict(self) -> dict:
        """The settings that decide the training trajectory (a resume must keep them all). The model and the data
        are checked by content instead (weights hash, blocks hash)."""
        skip = {"model", "out_dir", "data", "donor", "sharding", "eval_every", "eval_at", "eval_batches", "save_every", "keep_last", "log_every",
                "tensorboard", "resume", "overwrite"}
        d = self.to_dict()
        return {f.name: d[f.name] for f in fields(self) if f.name not in skip}

    def trajectory_hash(self) -> str:
        payload = json.dumps(self.trajectory_dict(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

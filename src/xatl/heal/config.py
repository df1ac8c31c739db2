"""The settings of ``xatl heal``: one dataclass, one source of truth (the command's flags are generated from it).

Each field carries its help text as metadata; ``xatl heal --help`` shows it with the default taken from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields

from ..errors import ConfigError
from .budget import Budget

STAGE2 = ("lora", "unfreeze", "frozen")


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class HealConfig:
    """A healing run: convert ``donor`` into a ``mixer`` student, then (1) attention transfer: every LCI layer's
    mixer learns to reproduce the donor's attention output on the donor's own hidden states (all layers at once,
    from one donor forward pass; only the new mixer parameters train), then (2) end to end: distillation from the
    donor's logits plus the LM loss, with LoRA on the copied weights (or unfreezing them), within ``budget``."""

    donor: str = _f(MISSING, "donor: HF model directory, .gguf file or fetched asset name (e.g. smollm2-135m)",
                    required=True)
    out_dir: str = _f(MISSING, "run directory: student/, train/ (metrics, checkpoints, final/), heal.json",
                      required=True, flag="--out")
    mixer: str = _f("lolcats", "token mixer of the healed layers (lolcats = sliding-window softmax + Hedgehog linear "
                    "attention)")
    attention_layers: list = _f([], "layers that keep the donor's softmax attention (a hybrid), e.g. 0,10,20,29")
    mixer_options: dict = _f({}, "options of the mixer as KEY=VALUE, e.g. window=64")
    budget: str = _f("15m", "how much healing: wall-clock (15m, 90s, 1h), optimizer steps (400steps) or tokens "
                     "(1.5Mtok)")
    align_fraction: float = _f(0.5, "share of the budget spent on stage 1 (attention transfer), in [0, 1)")
    data: list = _f(["default"], "training corpora (wiki, sotu, pydoc, default) or files")
    block_size: int = _f(256, "tokens per training block")
    max_documents: int | None = _f(None, "use only the first N documents of each source")
    micro_batch_size: int = _f(4, "blocks per forward/backward pass")
    grad_accum: int = _f(1, "micro-batches per optimizer step")
    align_lr: float = _f(1e-2, "peak learning rate of stage 1 (the new mixer parameters)")
    lr: float = _f(1e-3, "peak learning rate of stage 2 for the new (non-copied) parameters")
    copied_lr: float | None = _f(None, "peak learning rate of stage 2 for the LoRA adapters / unfrozen copied "
                                 "weights (None: lr with LoRA, lr/10 when unfreezing)")
    kd_weight: float = _f(0.5, "weight of distillation from the donor's logits in stage 2 (rest: LM loss)")
    kd_temperature: float = _f(1.0, "distillation temperature")
    stage2: str = _f("lora", "what the copied weights do in stage 2: lora (adapters on them), unfreeze (train "
                     "them) or frozen", choices=STAGE2)
    lora_rank: int = _f(8, "LoRA rank for stage2=lora")
    eval_every: int = _f(10, "validation every N steps (and at step 0 and the end)")
    eval_batches: int = _f(4, "micro-batches of the validation split per evaluation")
    eval_documents: int = _f(40, "held-out documents for the final perplexity of student and donor (0: skip)")
    eval_window: int = _f(512, "tokens per window of that perplexity")
    seed: int = _f(0, "seed of the new weights, the data order and every RNG")
    overwrite: bool = _f(False, "replace a finished or different run in --out")

    def __post_init__(self) -> None:
        self.attention_layers = [int(i) for i in self.attention_layers]
        self.data = [str(s) for s in ([self.data] if isinstance(self.data, str) else self.data)]
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(bool(self.donor), "donor is required: an HF model directory, .gguf file or asset name (smollm2-135m)")
        need(bool(self.out_dir), "out_dir (--out) is required")
        self.parsed_budget()
        need(0.0 <= self.align_fraction < 1.0, f"align_fraction must be in [0, 1), got {self.align_fraction}")
        for name in ("block_size", "micro_batch_size", "grad_accum"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                 f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        need(self.block_size >= 2, "block_size must be >= 2")
        need(self.align_lr > 0 and self.lr > 0, "align_lr and lr must be > 0")
        need(self.copied_lr is None or self.copied_lr >= 0, f"copied_lr must be >= 0, got {self.copied_lr}")
        need(0.0 <= self.kd_weight <= 1.0, f"kd_weight must be in [0, 1], got {self.kd_weight}")
        need(self.kd_temperature > 0, f"kd_temperature must be > 0, got {self.kd_temperature}")
        need(self.stage2 in STAGE2, f"unknown stage2 {self.stage2!r}; choose one of: {', '.join(STAGE2)}")
        need(self.stage2 != "lora" or self.lora_rank >= 1, "stage2=lora needs lora_rank >= 1")
        for name in ("eval_every", "eval_batches", "eval_documents"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.eval_window >= 2, f"eval_window must be >= 2, got {self.eval_window}")

    def parsed_budget(self) -> Budget:
        return Budget.parse(self.budget)

    def to_dict(self) -> dict:
        return asdict(self)

    def plan_hash(self) -> str:
        """Hash of everything that decides the run (a rerun with another hash is a different run)."""
        skip = {"out_dir", "overwrite", "eval_documents", "eval_window"}
        d = {k: v for k, v in self.to_dict().items() if k not in skip}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def heal_fields():
    """The dataclass fields in order (for the CLI)."""
    return fields(HealConfig)

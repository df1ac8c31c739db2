"""The settings of ``xatl heal``: one dataclass, one source of truth (the command's flags are generated from it).

Each field carries its help text and its range as metadata (:mod:`xatl.utils.settings`); ``xatl heal --help``
shows it with the default taken from here (:mod:`xatl.cli.flags`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass

from ..errors import ConfigError
from ..utils.settings import check_ranges, setting
from .budget import Budget

STAGE2 = ("lora", "unfreeze", "frozen")
LONG_CONTEXT_OPTIONS = {"lolcats": {"decay_span": 256, "linear_rope": False, "sinks": 4, "sparse_cache": 192,
                                    "cache_while_training": False}}
"""Mixer options heal adds unless they are set: xatl's long-context variant of the mixer (for lolcats a decayed,
position-free linear part, 4 attention sinks and LoLA's exact cache of 192 pairs per head, both scored at distances
the training blocks hold; the cache is used by the healed student but not while it trains;
docs/heal.md#long-context).
``--mixer-option decay_span=0 --mixer-option linear_rope=true --mixer-option sinks=0 --mixer-option
sparse_cache=0`` gives LoLCATs as published."""


def long_context_options(mixer: str, block_size: int, given: dict | None = None) -> dict:
    """The mixer options of a heal of ``mixer`` on blocks of ``block_size`` tokens: LONG_CONTEXT_OPTIONS, then the
    ``given`` ones over them, and the last trained position as ``sink_position_limit`` (with sinks) and
    ``cache_position_limit`` (with LoLA's cache on unrotated keys) unless given: past it, the sinks and the cached
    pairs are scored as if there, so no query meets an exact pair further away than training did; and with LoLA's
    cache the block size as ``logn_scale``: past it, the softmax part sharpens by log(t + 1) / log(block), so that
    the many exact pairs of a long input do not blur the attention trained over one block."""
    options = {**LONG_CONTEXT_OPTIONS.get(mixer, {}), **dict(given or {})}
    if options.get("sinks"):
        options.setdefault("sink_position_limit", block_size - 1)
    if options.get("sparse_cache") and options.get("linear_rope") is False:
        options.setdefault("cache_position_limit", block_size - 1)
    if options.get("sparse_cache"):
        options.setdefault("logn_scale", block_size)
    return options


def _f(default, help: str, **kw):
    return setting(default, help=help, **kw)


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
    attention_layers: list | str = _f([], "layers that keep the donor's softmax attention (a hybrid), e.g. 0,10,20,29; "
                                      "or auto:K: the K layers that most lower the donor-student KL on long retrieval "
                                      "probes when switched back to softmax, measured after a short attention "
                                      "transfer (xatl.heal.select)")
    mixer_options: dict = _f({}, "options of the mixer as KEY=VALUE, e.g. window=64; for lolcats heal adds "
                             + " ".join(f"{k}={str(v).lower()}" for k, v in LONG_CONTEXT_OPTIONS["lolcats"].items())
                             + " sink_position_limit=cache_position_limit=(block size - 1) and logn_scale=(block size)"
                             " unless set (the long-context variant)")
    budget: str = _f("15m", "how much healing: wall-clock (15m, 90s, 1h), optimizer steps (400steps) or tokens "
                     "(1.5Mtok)")
    align_fraction: float = _f(0.5, "share of the budget spent on stage 1 (attention transfer), in [0, 1)", min=0, below=1)
    data: list = _f(["default"], "training corpora (wiki, sotu, pydoc, default) or files")
    block_size: int = _f(1024, "tokens per training block (long blocks: the students run on long inputs)", min=2,
                         whole=True)
    max_documents: int | None = _f(None, "use only the first N documents of each source")
    micro_batch_size: int = _f(1, "blocks per forward/backward pass (4 x 1024 tokens of stage 2 need ~24 GB)", min=1,
                               whole=True)
    grad_accum: int = _f(4, "micro-batches per optimizer step", min=1, whole=True)
    align_lr: float = _f(1e-2, "peak learning rate of stage 1 (the new mixer parameters)", above=0)
    lr: float = _f(1e-3, "peak learning rate of stage 2 for the new (non-copied) parameters", above=0)
    copied_lr: float | None = _f(None, "peak learning rate of stage 2 for the LoRA adapters / unfrozen copied "
                                 "weights (None: lr with LoRA, lr/10 when unfreezing)", min=0)
    kd_weight: float = _f(0.5, "weight of distillation from the donor's logits in stage 2 (rest: LM loss)", min=0, max=1)
    kd_temperature: float = _f(1.0, "distillation temperature", above=0)
    stage2: str = _f("lora", "what the copied weights do in stage 2: lora (adapters on them), unfreeze (train "
                     "them) or frozen", choices=STAGE2)
    lora_rank: int = _f(8, "LoRA rank for stage2=lora")
    eval_every: int = _f(10, "validation every N steps (and at step 0 and the end)", min=0)
    eval_batches: int = _f(4, "micro-batches of the validation split per evaluation", min=0)
    eval_documents: int = _f(40, "held-out documents for the final perplexity of student and donor (0: skip)", min=0)
    eval_window: int = _f(512, "tokens per window of that perplexity", min=2)
    select_length: int = _f(1024, "tokens per probe of --attention-layers auto:K (passkey prompts, answer appended)",
                            min=16, whole=True)
    select_probes: int = _f(4, "probes of --attention-layers auto:K", min=1, whole=True)
    select_align_steps: int = _f(8, "attention-transfer steps before --attention-layers auto:K measures (taken from "
                                 "stage 1's steps; the hybrid's stage 1 continues from them)", min=1, whole=True)
    seed: int = _f(0, "seed of the new weights, the data order and every RNG")
    overwrite: bool = _f(False, "replace a finished or different run in --out")

    def __post_init__(self) -> None:
        if isinstance(self.attention_layers, str) and not self.attention_layers.startswith("auto"):
            self.attention_layers = [t for t in self.attention_layers.split(",") if t.strip()]
        if not isinstance(self.attention_layers, str):
            try:
                self.attention_layers = [int(i) for i in self.attention_layers]
            except (TypeError, ValueError):
                raise ConfigError(f"attention_layers must be layer indices (0,10,20) or auto:K, got "
                                  f"{self.attention_layers!r}") from None
        self.data = [str(s) for s in ([self.data] if isinstance(self.data, str) else self.data)]
        self.mixer_options = long_context_options(self.mixer, self.block_size, self.mixer_options)
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(bool(self.donor), "donor is required: an HF model directory, .gguf file or asset name (smollm2-135m)")
        need(bool(self.out_dir), "out_dir (--out) is required")
        self.parsed_budget()
        problem = check_ranges(self)
        need(problem is None, str(problem))
        need(self.stage2 != "lora" or self.lora_rank >= 1, "stage2=lora needs lora_rank >= 1")
        if isinstance(self.attention_layers, str):
            need(self.auto_layers() is not None, f"attention_layers must be layer indices (0,10,20) or auto:K with "
                 f"K >= 1, got {self.attention_layers!r}")

    def auto_layers(self) -> int | None:
        """K of ``attention_layers="auto:K"`` (None when the layers are listed)."""
        if not isinstance(self.attention_layers, str):
            return None
        head, _, k = self.attention_layers.partition(":")
        return int(k) if head == "auto" and k.isdigit() and int(k) >= 1 else None

    def parsed_budget(self) -> Budget:
        return Budget.parse(self.budget)

    def to_dict(self) -> dict:
        return asdict(self)

    def plan_hash(self) -> str:
        """Hash of everything that decides the run (a rerun with another hash is a different run)."""
        skip = {"out_dir", "overwrite", "eval_documents", "eval_window"}
        d = {k: v for k, v in self.to_dict().items() if k not in skip}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


"""``train(cfg)``: the training run (optional alignment stage, then LM training with the freeze schedule).

    from xatl.train import TrainConfig, train
    result = train(TrainConfig(model="students/smol-ret", out_dir="runs/smol-ret", max_steps=2000), blocks)

One optimizer step: the process's micro-batches (forward, loss, backward; DDP syncs on the last one), the mean
loss over every process checked for NaN/inf, gradient clipping, AdamW, then the schedule: the copied weights may
unfreeze, metrics are written, validation and checkpoints happen on their cadence.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..errors import ConfigError, ModelLoadError, TrainingError
from ..utils.fs import remove_if_only
from ..utils.remote_code import reraise_refusal
from . import setup, sharding
from .accounting import FlopCounter, stage_record, trainable_matmul_params
from .checkpoint import (
    check_compatible,
    checkpoint_root,
    is_write_error,
    load_training_files,
    prune_checkpoints,
    read_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data import Blocks, BlockStream, check_enough, eval_batches, eval_chunks, micro_batches, resolve_dataset
from .metrics import MetricsWriter, format_summary, postfix, progress_bar
from .params import (
    COPIED,
    FRESH,
    adapter_state_dict,
    add_lora,
    base_state_dict,
    build_plan,
    make_optimizer,
    merge_lora,
    param_groups,
    set_trainable,
)
from .schedule import UnfreezeSchedule, copied_lr_factor, lr_factor
from .teacher import MixerAligner, kd_loss, lm_loss, resolve_donor, softmax_twin, teacher_activations

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run reports (also in ``out_dir/summary.json``)."""

    final_step: int
    tokens: int
    train_loss: float | None
    val_loss: float | None
    metrics_path: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    final_dir: Path
    wall_seconds: float
    flops: float
    unfrozen_after: int | None
    """LM step after which the copied weights trained (None: never; 0: from the start)."""
    summary: dict = field(default_factory=dict)


@dataclass
class RunState:
    """Everything about the run's progress that a checkpoint must carry (JSON)."""

    step: int = 0
    position: int = 0
    tokens: int = 0
    copied_trains: bool = False
    unfrozen_after: int | None = None
    last_loss: float | None = None
    val_loss: float | None = None
    best_val: float | None = None
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    wall: float = 0.0
    stages: dict = field(default_factory=lambda: {"align": stage_record(), "lm": stage_record()})
    schedule: dict | None = None


def train(cfg, dataset=None, *, donor=None, progress: bool = True, on_step=None) -> TrainResult:
    """Run ``cfg`` (a TrainConfig) on ``dataset`` (a DatasetDict(train, validation) or Dataset of ``input_ids``
    blocks; None: built from ``cfg.data``). ``donor``: a loaded donor model or path (alignment, distillation).
    ``on_step(step, record, model)`` is called after every optimizer step; an exception raised there stops the
    run as a crash would (no checkpoint is written). Works the same under ``accelerate launch`` (DDP)."""
    existed = Path(cfg.out_dir).exists()
    try:
        trainer = Trainer(cfg, dataset, donor=donor, progress=progress, on_step=on_step)
    except BaseException:
        setup.unlock_run_dir(Path(cfg.out_dir))
        if not existed:                      # refused before any work: leave no empty --out behind
            remove_if_only(cfg.out_dir, {setup.LOCK_FILE})
        raise
    try:
        return trainer.run()
    finally:
        trainer.close()
        setup.unlock_run_dir(Path(cfg.out_dir))


class Trainer:
    def __init__(self, cfg, dataset, donor=None, progress=True, on_step=None):
        self.cfg, self.on_step, self.progress = cfg, on_step, progress
        self.acc, accelerate_fsdp = setup.make_accelerator()
        self.world, self.rank, self.main = self.acc.num_processes, self.acc.process_index, self.acc.is_main_process
        self.sharded = cfg.sharding == "fsdp" or accelerate_fsdp
        if self.sharded and self.world == 1:
            raise TrainingError("sharding='fsdp' needs several processes: launch with torchrun --nproc_per_node N "
                                "or accelerate launch --num_processes N, or train one process with --sharding none")
        self.device = self.acc.device
        self.bf16 = setup.use_bf16(cfg.bf16, self.device)
        self.out = Path(cfg.out_dir)
        self.writer = self.bar = None
        ckpt = setup.broadcast(setup.prepare_out_dir(cfg, self.main), self.acc)
        self.acc.wait_for_everyone()
        setup.seed_everything(cfg.seed)
        from ..eval.loading import resolve_model, weights_sha256

        self.src = resolve_model(cfg.model)
        self.model_sha = weights_sha256(str(self.src))
        self.report = setup.load_report(self.src.path)
        self.tokenizer = setup.load_tokenizer(self.src)
        self._load_data(dataset)
        self.state, saved = RunState(), None
        if ckpt is not None:
            saved = read_state(ckpt)
            check_compatible(saved, self._identity(), ckpt)
        # sharded: only the main process reads the weights; the others build on the meta device (no memory)
        self.model = setup.load_for_training(ckpt / "model" if ckpt is not None else cfg.model,
                                             meta=self.sharded and not self.main)
        self.plan = build_plan(self.model, self.report, cfg.freeze, cfg.lora.rank)
        if cfg.lora.rank:
            add_lora(self.model, self.plan, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout)
        if not self.sharded:         # fully_shard moves each unit to the device as it shards it
            self.model.to(self.device)
        self.schedule = UnfreezeSchedule(cfg.unfreeze, cfg.max_steps)
        self.has_copied = bool(self.plan.copied)
        self.state.copied_trains = cfg.freeze == "none" or not self.schedule.initially_frozen
        self.state.unfrozen_after = 0 if self.state.copied_trains and self.has_copied else None
        self.optimizer_state, self.optimizer_stage, self.rng_to_restore = None, None, None
        if ckpt is not None:
            self._restore(ckpt, saved)
        if self.sharded:
            self.plan = sharding.shard(self.model, self.plan, device=self.device)
            sharding.init_root(self.model, self.device)
        self._load_teachers(donor)
        self.stage, self.optimizer, self.wrapped, self.aligner = None, None, None, None

    # ------------------------------------------------------------------------------------------ setup
    def _load_data(self, dataset) -> None:
        from transformers import AutoConfig

        from .. import models  # noqa: F401  (registers the XATL student with the Auto classes)

        try:
            config = AutoConfig.from_pretrained(self.src.path, **self.src.kwargs)
        except Exception as e:
            reraise_refusal(str(self.src), e, ModelLoadError)
            raise
        from ..inference.quantize import quantized_as

        if quantized_as(config):
            raise ConfigError(f"{str(self.src)!r} is a {quantized_as(config)} student, quantised for "
                              "inference; train the float student it was quantised from, then quantise again")
        train, val = resolve_dataset(dataset, self.cfg, self.tokenizer, config)
        limit = getattr(config, "max_position_embeddings", None)
        self.train_blocks = Blocks(train, config.vocab_size, limit, "train")
        self.val_blocks = Blocks(val, config.vocab_size, limit, "validation") if val is not None else None
        self.global_batch = self.cfg.micro_batch_size * self.cfg.grad_accum * self.world
        check_enough(self.train_blocks, self.global_batch)
        self.stream = BlockStream(self.train_blocks.n, self.cfg.seed)
        self.T = self.train_blocks.block_size
        self._data_fp = None
        self.val_data = (eval_batches(self.val_blocks, self.cfg.micro_batch_size, self.cfg.eval_batches, self.world,
                                      self.rank) if self.val_blocks is not None and self.cfg.eval_batches else None)
        # sharded: every forward is collective, so every process runs as many validation forwards as the busiest
        self.val_rounds = (len(eval_chunks(self.val_blocks, self.cfg.micro_batch_size, self.cfg.eval_batches))
                           + self.world - 1) // self.world if self.val_data is not None else 0

    def _identity(self) -> dict:
        if self._data_fp is None:
            self._data_fp = self.train_blocks.fingerprint()
        return {"model_sha256": self.model_sha, "model_path": str(self.src), "global_batch": self.global_batch,
                "data_fingerprint": self._data_fp, "config_hash": self.cfg.trajectory_hash(),
                "trajectory": self.cfg.trajectory_dict()}

    def _restore(self, ckpt: Path, saved: dict) -> None:
        self.state = RunState(**saved["run"])
        self.schedule.load_state_dict(self.state.schedule or {})
        optimizer, rngs, adapters = load_training_files(ckpt)
        if adapters is not None:
            named = dict(self.model.named_parameters())
            with torch.no_grad():
                for name, t in adapters.items():
                    named[name].copy_(t)
        self.optimizer_state, self.optimizer_stage = optimizer, saved.get("stage")
        self.rng_to_restore = rngs[self.rank] if len(rngs) == self.world else rngs[0]
        log.info("resuming from %s (step %d)", ckpt, self.state.step)

    def _load_teachers(self, donor) -> None:
        cfg = self.cfg
        need_align = cfg.align.steps > 0 and self.state.step < cfg.align.steps
        self.twin = self.kd_teacher = None
        if cfg.align.steps and getattr(self.model.config, "model_type", None) != "xatl":
            raise TrainingError("the alignment stage needs an XATL student (from `xatl convert`); this model is a "
                                f"{self.model.config.model_type!r}; set --align-steps 0")
        if need_align and not self.plan.align:
            raise TrainingError("the alignment stage has no parameter to train (every LCI mixer weight is copied "
                                "and frozen); use --freeze none or copy fewer weights")
        if not (need_align or cfg.kd.weight > 0):
            return
        teacher = resolve_donor(donor, cfg, self.model.config, self.report)
        if need_align:
            self.twin = softmax_twin(teacher, self.model.config).to(self.device)
        if cfg.kd.weight > 0:
            self.kd_teacher = teacher.to(self.device)

    # ------------------------------------------------------------------------------------------ stages
    def _enter_stage(self, stage: str) -> None:
        self.stage = stage
        if stage == "align":
            self.aligner = MixerAligner(self.model)
            groups = param_groups({"align": self.plan.align}, self.cfg.weight_decay)
        else:
            self.aligner, self.twin = None, None
            groups = param_groups({FRESH: self.plan.fresh, COPIED: self.plan.copied}, self.cfg.weight_decay)
        self.optimizer = make_optimizer(groups, self.cfg.betas, fused_ok=self.device.type == "cuda")
        if self.optimizer_state is not None and self.optimizer_stage == stage:
            if self.sharded:
                sharding.load_optimizer_state(self.optimizer, self.optimizer_state)
            else:
                self.optimizer.load_state_dict(self.optimizer_state)
        self.optimizer_state = None
        self._rewrap()
        self.flops = FlopCounter.build(self.model, self.T, kd_donor=self.kd_teacher, twin=self.twin,
                                       align_params=sum(p.numel() for _, p in self.plan.align))

    def _rewrap(self) -> None:
        """Set requires_grad for the stage and freeze state, then (re)wrap in DDP: DDP only syncs parameters
        that required grad when it was built, so it is rebuilt whenever the trainable set changes. A sharded
        model is wrapped once: FSDP2 reduce-scatters the gradients of whatever requires one."""
        n = set_trainable(self.model, self.plan, self.stage, self.state.copied_trains)
        if n == 0:
            raise TrainingError("nothing to train: every parameter is copied and frozen; use --freeze none or an "
                                "unfreeze schedule such as step:0")
        self.n_train_matmul = trainable_matmul_params(self.model)
        module = self.aligner if self.stage == "align" else self.model
        self.wrapped = module
        if self.world > 1 and not self.sharded:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(module, device_ids=ids)
        log.debug("stage %s: %d trainable parameters", self.stage, n)

    # ------------------------------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        total = cfg.total_steps
        if self.main:
            self.writer = MetricsWriter(self.out, cfg.tensorboard, st.step if st.step else None)
            self.bar = progress_bar(total, st.step, self.progress)
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore)
        self.model.train()
        if st.step == 0 and self.val_data is not None:
            self._evaluate_step0()
        t_segment = time.perf_counter()
        wall0 = st.wall
        while st.step < total:
            stage = "align" if st.step < cfg.align.steps else "lm"
            if stage != self.stage:
                self._enter_stage(stage)
            t0 = time.perf_counter()
            record = self._step()
            st.wall = wall0 + time.perf_counter() - t_segment
            self._after_step(record, time.perf_counter() - t0)
        return self._finish()

    def _evaluate_step0(self) -> None:
        """The validation loss before any training (step 0): every curve starts there."""
        t0 = time.perf_counter()
        val = self._evaluate()
        self.state.val_loss = val
        first = "align" if self.cfg.align.steps else "lm"
        record = {"step": 0, "stage": first, "val_loss": val, "tokens": 0, "wall": 0.0,
                  "frozen": self.has_copied and (first == "align" or not self.state.copied_trains),
                  "eval_seconds": round(time.perf_counter() - t0, 3)}
        if self.main:
            self.writer.write(record)
            self.bar.set_postfix({"val": f"{val:.4f}"}, refresh=False)

    def _set_lr(self, step: int) -> tuple[float, float | None]:
        cfg = self.cfg
        if self.stage == "align":
            lr = cfg.align.lr * lr_factor(step, cfg.align_warmup, cfg.align.steps, cfg.min_lr)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            return lr, None
        s = step - cfg.align.steps
        lr = cfg.lr * lr_factor(s, cfg.lm_warmup, cfg.max_steps, cfg.min_lr)
        after = self.state.unfrozen_after if self.state.copied_trains else None
        main = lambda t: lr_factor(t, cfg.lm_warmup, cfg.max_steps, cfg.min_lr)  # noqa: E731
        lr_c = cfg.copied_lr * copied_lr_factor(s, after, cfg.copied_warmup, main)
        for g in self.optimizer.param_groups:
            g["lr"] = lr if g["role"] == FRESH else lr_c
        return lr, (lr_c if self.has_copied else None)

    def _step(self) -> dict:
        cfg, st = self.cfg, self.state
        step = st.step + 1
        lr, lr_c = self._set_lr(step)
        frozen = self.has_copied and (self.stage == "align" or not st.copied_trains)    # copied weights idle
        batches = micro_batches(self.stream, self.train_blocks, st.position, cfg.micro_batch_size, cfg.grad_accum,
                                self.world, self.rank)
        sums = torch.zeros(2, device=self.device)      # loss, KD term: summed over the micro-batches
        errs = None
        for m, ids in enumerate(batches):
            ids = ids.to(self.device)
            sync = m == len(batches) - 1 or self.world == 1
            if self.sharded:
                sharding.gradient_sync(self.model, sync)
            with (contextlib.nullcontext() if sync or self.sharded else self.wrapped.no_sync()):
                if self.stage == "align":
                    loss, per_layer = self._align_loss(ids)
                    errs = per_layer if errs is None else errs + per_layer
                else:
                    loss, kd = self._lm_loss(ids)
                    sums[1] += kd
                (loss / len(batches)).backward()
            sums[0] += loss.detach()
        sums = setup.all_reduce(sums / len(batches), "mean", self.world)
        loss = sums[0].item()
        if not math.isfinite(loss):
            self._fail_nonfinite(step, "loss", loss)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = sharding.as_float(torch.nn.utils.clip_grad_norm_(params, cfg.clip if cfg.clip > 0 else float("inf")))
        if not math.isfinite(norm):
            self._fail_nonfinite(step, "gradient norm", norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        record = {"step": step, "stage": self.stage, "loss": loss, "lr": lr, "lr_copied": lr_c, "frozen": frozen,
                  "grad_norm": norm}
        if self.stage == "lm" and cfg.kd.weight > 0:
            record["kd_loss"] = sums[1].item()
        if errs is not None:
            errs = setup.all_reduce(errs / len(batches), "mean", self.world)
            record["align_err"] = [round(e, 6) for e in errs.tolist()]
        return record

    def _lm_loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with setup.autocast(self.device, self.bf16):
            logits = self.wrapped(input_ids=ids, use_cache=False).logits
        ce = lm_loss(logits, ids)
        if self.kd_teacher is None:
            return ce, torch.zeros((), device=ids.device)
        with torch.no_grad(), setup.autocast(self.device, self.bf16):
            teacher = self.kd_teacher(input_ids=ids, use_cache=False).logits
        kd = kd_loss(logits, teacher, self.cfg.kd.temperature)
        w = self.cfg.kd.weight
        return (1 - w) * ce + w * kd, kd.detach()

    def _align_loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with setup.autocast(self.device, self.bf16):
            acts = teacher_activations(self.twin, self.aligner.layers, ids)
            per_layer = self.wrapped(acts)
        return per_layer.mean(), per_layer.detach()

    def _fail_nonfinite(self, step: int, what: str, value: float) -> None:
        last = self.state.last_checkpoint
        keep = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        raise TrainingError(f"the {what} became {value} at step {step} ({self.stage} stage); the run stopped and "
                            f"{keep}; start again with a lower --lr (or more warm-up / clipping) in a new --out, or in this "
                            "one with --no-resume --overwrite (a resume keeps the settings that diverged)")

    def _after_step(self, record: dict, seconds: float) -> None:
        cfg, st = self.cfg, self.state
        st.step = record["step"]
        st.position += self.global_batch
        tokens = self.global_batch * self.T
        st.tokens += tokens
        st.last_loss = record["loss"]
        stats = st.stages[self.stage]
        per_token = (self.flops.align_per_token() if self.stage == "align"
                     else self.flops.lm_per_token(self.n_train_matmul, cfg.kd.weight > 0))
        stats["steps"] += 1
        stats["tokens"] += tokens
        stats["flops"] += per_token * tokens
        stats["seconds"] += seconds
        record.update(tokens=st.tokens, wall=round(st.wall, 3), tokens_per_s=tokens / max(seconds, 1e-9),
                      flops=sum(v["flops"] for v in st.stages.values()))
        event = self._maybe_unfreeze(record)
        is_last = st.step == cfg.total_steps
        save = is_last or bool(cfg.save_every and st.step % cfg.save_every == 0)
        if self.val_data is not None and (is_last or save or (cfg.eval_every and st.step % cfg.eval_every == 0)
                                          or st.step in cfg.eval_at):
            st.val_loss = record["val_loss"] = self._evaluate()
        if self.main:
            if event or "val_loss" in record or is_last or (cfg.log_every and st.step % cfg.log_every == 0):
                self.writer.write(record)
            self.bar.set_postfix(postfix(record, self.has_copied, bool(self.cfg.lora.rank)), refresh=False)
            self.bar.update(1)
        if save:
            self._save(record.get("val_loss"))
        if self.on_step is not None:
            self.on_step(st.step, record, self.model)

    def _maybe_unfreeze(self, record: dict) -> bool:
        st = self.state
        if self.stage != "lm" or not self.has_copied or st.copied_trains:
            return False
        lm_step = st.step - self.cfg.align.steps
        fired = self.schedule.observe(lm_step, record["loss"])
        st.schedule = self.schedule.state_dict()
        if not fired:
            return False
        st.copied_trains, st.unfrozen_after = True, lm_step
        record["unfrozen"] = True
        self._rewrap()
        msg = f"copied weights unfrozen after LM step {lm_step} ({self.schedule.spec})"
        log.info(msg)
        if self.main and self.bar is not None:
            self.bar.write(msg)
        return True

    @torch.no_grad()
    def _evaluate(self) -> float:
        self.model.eval()
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)
        rounds = self.val_rounds if self.sharded else len(self.val_data)
        for r in range(rounds):
            counted = r < len(self.val_data)      # sharded: a process short of batches runs the forward anyway
            ids = (self.val_data[r] if counted else self.val_blocks.get([0])).to(self.device)
            with setup.autocast(self.device, self.bf16):
                logits = self.model(input_ids=ids, use_cache=False).logits
            if counted:
                n = ids[:, 1:].numel()
                sums[0] += lm_loss(logits, ids).double() * n
                sums[1] += n
        self.model.train()
        sums = setup.all_reduce(sums, "sum", self.world)
        return (sums[0] / sums[1]).item()

    # ------------------------------------------------------------------------------------------ saving
    def _save(self, val_loss: float | None) -> None:
        st = self.state
        path = checkpoint_root(self.out) / f"step-{st.step}"
        previous = st.last_checkpoint
        rngs = setup.gather(rng_state(), self.acc)
        st.last_checkpoint = str(path)
        if val_loss is not None and (st.best_val is None or val_loss < st.best_val):
            st.best_val, st.best_checkpoint = val_loss, str(path)
        error = None
        model_state = sharding.full_state_dict(self.model) if self.sharded else None   # collective
        optimizer_state = (sharding.optimizer_state(self.optimizer) if self.sharded
                           else self.optimizer.state_dict())
        if self.main:
            payload = {"run": asdict(st), "stage": self.stage, "xatl_version": __version__,
                       "world_size": self.world, "sharding": "fsdp" if self.sharded else "none", **self._identity()}
            save_model = lambda dest: self._save_model(dest, model_state)  # noqa: E731
            try:
                save_checkpoint(path, save_model=save_model, optimizer_state=optimizer_state, rng_states=rngs,
                                state=payload, adapters=(adapter_state_dict(self.model, self.plan, model_state)
                                                         if self.cfg.lora.rank else None))
                prune_checkpoints(self.out, self.cfg.keep_last,
                                  {Path(st.best_checkpoint)} if st.best_checkpoint else set())
            except Exception as e:  # noqa: BLE001 - every rank must hear of the failure, or the others hang
                error = (f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else 'no message'}",
                         is_write_error(e))
        error = setup.broadcast(error, self.acc)
        if error is not None:
            keep = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
            fix = "free disk space and resume" if error[1] else "resume once the cause is fixed"
            raise TrainingError(f"could not write checkpoint {path} ({error[0]}); {keep}; {fix}")
        self.acc.wait_for_everyone()

    def _save_model(self, dest: Path, state: dict | None = None) -> None:
        """save_pretrained of the model (``state``: its whole state, when sharded), without LoRA adapters."""
        if self.cfg.lora.rank:
            state = dict(base_state_dict(self.model, self.plan, state))
        with setup.quiet_transformers():
            self.model.save_pretrained(dest, state_dict=state)
        setup.copy_companions(dest, self.tokenizer, self.src)

    def _finish(self) -> TrainResult:
        st = self.state
        final = self.out / "final"
        flops = sum(s["flops"] for s in st.stages.values())
        summary = {"final_step": st.step, "tokens": st.tokens, "flops": flops, "wall_seconds": st.wall,
                   "train_loss": st.last_loss, "val_loss": st.val_loss, "best_val_loss": st.best_val,
                   "best_checkpoint": st.best_checkpoint, "last_checkpoint": st.last_checkpoint,
                   "unfrozen_after": st.unfrozen_after, "stages": st.stages, "final_dir": str(final),
                   "lit_windows": (self.schedule.lit.history if self.schedule.lit is not None else None),
                   "parameters": self.plan.counts(), "processes": self.world, "global_batch": self.global_batch,
                   "block_size": self.T, "bf16": self.bf16, "sharding": "fsdp" if self.sharded else "none",
                   "config": self.cfg.to_dict(),
                   "flops_formula": "see xatl.train.accounting: 4N + 2N_trainable + 3x mixing (+ teachers)"}
        final_model, save = self.model, None
        if self.sharded:
            state = sharding.full_state_dict(self.model)                        # collective
            if self.main and self.cfg.lora.rank:
                final_model = self._unsharded_copy(state)                        # the adapters merge into it
            elif self.main:
                save = lambda dest: self.model.save_pretrained(dest, state_dict=state)  # noqa: E731
        if self.main:
            if self.cfg.lora.rank:
                merge_lora(final_model)
            setup.save_final(final_model, self.out, self.tokenizer, self.src, save=save)
            from ..utils.fs import atomic_write_json

            atomic_write_json(self.out / "summary.json", summary)
            if self.progress:
                self.bar.close()
                print(format_summary(summary))
        self.acc.wait_for_everyone()
        path = lambda p: Path(p) if p else None  # noqa: E731
        return TrainResult(final_step=st.step, tokens=st.tokens, train_loss=st.last_loss, val_loss=st.val_loss,
                           metrics_path=self.out / "metrics.jsonl", best_checkpoint=path(st.best_checkpoint),
                           last_checkpoint=path(st.last_checkpoint), final_dir=final, wall_seconds=st.wall,
                           flops=flops, unfrozen_after=st.unfrozen_after, summary=summary)

    def _unsharded_copy(self, state: dict):
        """A plain (unsharded) model holding ``state``, the trained model's whole state with its LoRA adapters, so
        that peft can merge them (main process only)."""
        plain = setup.load_for_training(self.cfg.model)
        if self.cfg.lora.rank:
            add_lora(plain, build_plan(plain, self.report, self.cfg.freeze, self.cfg.lora.rank), self.cfg.lora.rank,
                     self.cfg.lora.alpha, self.cfg.lora.dropout)
        plain.load_state_dict(state)
        return plain

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""``heal(cfg)``: convert a donor into a student and heal it within a budget (what ``xatl heal`` runs).

    from xatl.heal import HealConfig, heal
    result = heal(HealConfig(donor="smollm2-135m", out_dir="runs/heal", mixer="lolcats", budget="15m"))

Layout of ``out_dir``:

    student/     the converted student (copy "all": the donor's Q/K/V/O serve the mixers that take them)
    train/       the training run (metrics.jsonl from step 0, checkpoints/, final/ = the healed model, summary.json)
    heal.json    the settings, the plan (steps per stage, the calibration that produced them) and the results

A rerun with the same settings resumes (the plan is read back, never re-measured); with other settings it is
refused unless ``overwrite``.
"""

from __future__ import annotations

import logging
import math
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, OutputExistsError
from ..utils.fs import atomic_write_json, exclusive_lock, remove_if_only
from .budget import Budget
from .config import HealConfig

log = logging.getLogger(__name__)

HEAL_FILE = "heal.json"
OWNED = ("student", "train", HEAL_FILE)
"""What a heal run writes into its directory (all that ``overwrite`` removes)."""
PLANNING = "planning"
"""heal.json's status until the plan is made (convert, layer choice, calibration): a rerun killed there starts over."""
LOCK = ".heal.lock"
"""Held for the whole run (convert, calibration, training): a second heal on the same --out is refused."""


@dataclass
class HealResult:
    out_dir: Path
    final_dir: Path
    plan: dict
    results: dict = field(default_factory=dict)


def _read_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare(cfg: HealConfig) -> dict | None:
    """Check ``out_dir`` before any work: the saved heal.json when this is a rerun of the same run, else None.
    Refuses a directory holding other files or another run (unless ``overwrite``: then only what heal wrote goes)."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r} is a file; choose a directory path")
    saved = _read_json(out / HEAL_FILE) if out.is_dir() else None
    refuse_foreign(out)
    if saved is not None and saved.get("plan_hash") == cfg.plan_hash() and not cfg.overwrite:
        if saved.get("status") != PLANNING:
            return saved
        _remove_owned(out)        # killed while converting/choosing/calibrating: nothing to keep, plan again
        return None
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        if not cfg.overwrite:
            what = "another heal run (other settings)" if saved is not None else "an unfinished heal run"
            raise OutputExistsError(f"--out {str(out)!r} holds {what}; use a new --out, or --overwrite to replace it")
        _remove_owned(out)
    return None


def _remove_owned(out: Path) -> None:
    for name in OWNED:
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def refuse_foreign(out: Path) -> None:
    """Refuse a directory holding files heal did not write (nothing in it is touched, not even a lock file)."""
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OWNED + (LOCK,)) if out.is_dir() else []
    if foreign:
        raise OutputExistsError(f"--out {str(out)!r} holds files heal did not write ({', '.join(foreign[:3])}); "
                                "choose a new or empty directory")


def _say(progress: bool, msg: str) -> None:
    log.info(msg)
    if progress:
        print(msg, file=sys.stderr, flush=True)


def heal(cfg: HealConfig, *, donor=None, dataset=None, progress: bool = True, on_step=None) -> HealResult:
    """Run (or resume) the healing run ``cfg``. ``donor``: an already loaded donor model (else loaded from
    ``cfg.donor``); ``dataset``: ready ``input_ids`` blocks (else built from ``cfg.data``); ``on_step`` as in
    ``xatl.train.train``."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r} is a file; choose a directory path")
    refuse_foreign(out)                          # before the lock file is created in it
    existed = out.exists()
    try:
        with exclusive_lock(out / LOCK, f"another heal is working in {str(out)!r}; wait for it to finish or "
                            "choose another --out"):
            return _heal(cfg, donor, dataset, progress, on_step)
    except BaseException:
        if not existed:                          # refused or failed before writing anything: leave nothing
            remove_if_only(out, {LOCK})
        raise


def _heal(cfg: HealConfig, donor, dataset, progress: bool, on_step) -> HealResult:
    from ..donors.load import load_donor, load_tokenizer, resolve_source

    saved = prepare(cfg)
    out = Path(cfg.out_dir)
    budget = cfg.parsed_budget()
    src = resolve_source(cfg.donor)
    tokenizer = load_tokenizer(src)
    if donor is None:
        _say(progress, f"heal: loading donor {cfg.donor} ...")
        donor = load_donor(src)
    donor.eval().requires_grad_(False)
    if saved is None:
        from ..mixers.registry import keeps_donor_attention
        from ..transfer import student_config

        auto = cfg.auto_layers()
        layers = [] if auto else cfg.attention_layers
        config = student_config(donor.config, mixer=cfg.mixer, attention_layers=layers,
                                mixer_options=cfg.mixer_options)
        if all(keeps_donor_attention(m) for m in config.layer_mixers):     # before anything is written
            raise ConfigError("every layer keeps softmax attention: nothing to heal; list fewer --attention-layers")
        selection = None
        atomic_write_json(out / HEAL_FILE, {"plan_hash": cfg.plan_hash(), "config": cfg.to_dict(), "status": PLANNING})
        if auto:
            from .choose import choose_layers

            student, selection = choose_layers(cfg, donor, config, tokenizer, dataset, out / "student", progress)
        else:
            student = _convert(cfg, donor, config, tokenizer, out / "student")
        plan = _plan(cfg, budget, student, donor, selection)
        saved = {"plan_hash": cfg.plan_hash(), "config": cfg.to_dict(), "donor": _donor_info(cfg.donor, donor),
                 "plan": plan, "status": "training"}
        atomic_write_json(out / HEAL_FILE, saved)
        del student
    plan = saved["plan"]
    final = out / "train" / "final"
    if saved.get("status") == "done" and (final / "config.json").is_file():
        _say(progress, f"heal: {out} is already healed ({plan['align_steps']} + {plan['lm_steps']} steps); "
             "nothing to do")
        return HealResult(out, final, plan, saved.get("results", {}))
    _say(progress, f"heal: budget {budget}: {plan['align_steps']} attention-transfer steps, then "
         f"{plan['lm_steps']} end-to-end steps ({plan['tokens_per_step']:,} tokens each)")
    from ..train import train

    t0 = time.perf_counter()
    result = train(train_config(cfg, plan, out), dataset, donor=donor, progress=progress, on_step=on_step)
    results = {"train_seconds": round(time.perf_counter() - t0, 1), "summary": result.summary}
    if cfg.eval_documents:
        results["heldout"] = heldout_comparison(final, donor, tokenizer, cfg, progress)
    saved.update(status="done", results=results)
    atomic_write_json(out / HEAL_FILE, saved)
    if progress and "heldout" in results:
        h = results["heldout"]
        print(f"heal: held-out perplexity {h['student']['perplexity']:.2f} vs donor {h['donor']['perplexity']:.2f} "
              f"({h['ratio']:.2f}x) on {h['documents']} documents never trained on; model: {final}")
    return HealResult(out, final, plan, results)


def _donor_info(name: str, donor) -> dict:
    from ..assets.registry import ASSETS

    asset = ASSETS.get(name)
    return {"source": name, "description": asset.description if asset else getattr(donor.config, "_name_or_path", ""),
            "model_type": donor.config.model_type, "parameters": sum(p.numel() for p in donor.parameters())}


def _convert(cfg: HealConfig, donor, config, tokenizer, dest: Path):
    from ..transfer import save_student, transfer

    student, report = transfer(donor, config, "all", consume_donor=False, seed=cfg.seed)
    save_student(student, dest, report, tokenizer, overwrite=True)
    return student


# ---------------------------------------------------------------------------------------------------- the plan
def _plan(cfg: HealConfig, budget: Budget, student, donor, selection: dict | None = None) -> dict:
    """Steps of each stage within ``budget``. With a layer ``selection`` (auto:K) its attention-transfer steps count
    as stage-1 steps already taken, and with a wall-clock budget its seconds are spent too."""
    tokens_per_step = cfg.micro_batch_size * cfg.grad_accum * cfg.block_size
    plan = {"budget": cfg.budget, "budget_kind": budget.kind, "tokens_per_step": tokens_per_step}
    if selection is not None:
        plan["selection"] = selection
        if budget.kind == "seconds":
            budget = Budget("seconds", max(budget.amount - selection["seconds_total"], 1.0))
    seconds = None
    if budget.kind == "seconds":
        t0 = time.perf_counter()
        from ..train.setup import load_report

        cal = calibrate(student, donor, cfg, load_report(Path(cfg.out_dir) / "student"))
        cal["seconds"] = round(time.perf_counter() - t0, 2)
        plan["calibration"] = cal
        # the budget pays for the calibration and the validations too (forward only: about a third of a step)
        evals_per_step = (1.0 / cfg.eval_every) if cfg.eval_every else 0.0
        eval_s = cfg.eval_batches * cal["forward_s"]
        seconds = (cal["align_step_s"] + evals_per_step * eval_s, cal["lm_step_s"] + evals_per_step * eval_s)
        budget = Budget("seconds", max(budget.amount - cal["seconds"] - 2 * eval_s, 1.0))
    plan["align_steps"], plan["lm_steps"] = budget.split(cfg.align_fraction, tokens_per_step, seconds)
    if selection is not None:
        taken = selection["align_steps"]
        if budget.kind != "seconds":                  # steps/tokens: the probe's steps were part of stage 1
            plan["align_steps"] = max(plan["align_steps"] - taken, 0)
    return plan


def median_seconds(fn, repeats: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (allocations, dispatch)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_functions(student, donor, ids: torch.Tensor, align_params, kd_temperature: float = 1.0) -> dict:
    """Closures running one micro-batch ``ids`` (B, T) of each kind of healing step, for timing:

    * ``align``: the donor's trunk, every LCI mixer on the donor's inputs, backward into ``align_params`` only;
    * ``lm``: the student's forward, LM loss and backward with every weight trainable; ``lm_kd``: the same plus
      distillation from the donor's logits at ``kd_temperature``;
    * ``forward``: the student's forward alone (a validation batch).
    Call ``restore()`` afterwards: every parameter trainable again, no gradients left."""
    from ..train.teacher import MixerAligner, kd_loss, lm_loss, softmax_twin, teacher_activations

    student.train()
    twin = softmax_twin(donor, student.config)
    aligner = MixerAligner(student)
    params, align_params = list(student.parameters()), list(align_params)

    def align():
        for p in params:
            p.requires_grad_(False)
        for p in align_params:
            p.requires_grad_(True)
        aligner(teacher_activations(twin, aligner.layers, ids)).mean().backward()

    def lm(kd: bool = False):
        for p in params:
            p.requires_grad_(True)
        logits = student(input_ids=ids, use_cache=False).logits
        loss = lm_loss(logits, ids)
        if kd:
            with torch.no_grad():
                teacher = donor(input_ids=ids, use_cache=False).logits
            loss = loss + kd_loss(logits, teacher, kd_temperature)
        loss.backward()

    def forward():
        with torch.no_grad():
            student(input_ids=ids, use_cache=False)

    def restore():
        for p in params:
            p.requires_grad_(True)
            p.grad = None

    return {"align": align, "lm": lm, "lm_kd": lambda: lm(kd=True), "forward": forward, "restore": restore}


def calibrate(student, donor, cfg: HealConfig, report=None) -> dict:
    """Measured seconds per optimizer step of each stage (and per forward-only micro-batch): one block of random
    token ids, timed after a warm-up and scaled by the blocks per step (per-token cost falls a little with the
    batch, so this errs on the long side). Stage-1 steps are timed with the parameters stage 1 trains (the LCI
    mixers' new ones; every LCI mixer parameter without the transfer ``report``), end-to-end steps with every
    weight trainable (an upper bound for LoRA's)."""
    from ..train.params import COPIED, build_plan
    from ..train.teacher import MixerAligner

    ids = torch.randint(0, student.config.vocab_size, (1, cfg.block_size), generator=torch.Generator().manual_seed(0))
    align = ([p for _, p in build_plan(student, report, COPIED).align] if report is not None
             else MixerAligner(student).parameters())
    steps = step_functions(student, donor, ids, align, cfg.kd_temperature)
    try:
        a, b, f = (median_seconds(steps[k]) for k in ("align", "lm_kd" if cfg.kd_weight > 0 else "lm", "forward"))
    finally:
        steps["restore"]()
    n = cfg.micro_batch_size * cfg.grad_accum
    return {"align_step_s": round(a * n, 3), "lm_step_s": round(b * n, 3), "forward_s": round(f * cfg.micro_batch_size, 3),
            "measured_blocks": 1, "threads": torch.get_num_threads()}


def train_config(cfg: HealConfig, plan: dict, out: Path):
    """The TrainConfig of the run: stage 1 is the trainer's alignment stage, stage 2 its LM stage with KD."""
    from ..data import DataConfig
    from ..train import AlignConfig, KDConfig, LoRAConfig, TrainConfig

    total = plan["align_steps"] + plan["lm_steps"]
    lora = cfg.stage2 == "lora"
    copied_lr = cfg.copied_lr if cfg.copied_lr is not None else (cfg.lr if lora else cfg.lr / 10)
    return TrainConfig(
        model=str(out / "student"), out_dir=str(out / "train"),
        data=DataConfig(sources=cfg.data, block_size=cfg.block_size, max_documents=cfg.max_documents),
        max_steps=plan["lm_steps"], micro_batch_size=cfg.micro_batch_size, grad_accum=cfg.grad_accum, lr=cfg.lr,
        warmup_steps=max(1, plan["lm_steps"] // 10), freeze="copied",
        unfreeze="never" if cfg.stage2 == "frozen" else "step:0", unfreeze_lr=copied_lr,
        unfreeze_warmup_steps=max(1, plan["lm_steps"] // 10),          # the stage-2 warm-up, as for the fresh weights
        align=AlignConfig(steps=plan["align_steps"], lr=cfg.align_lr),
        kd=KDConfig(weight=cfg.kd_weight, temperature=cfg.kd_temperature),
        lora=LoRAConfig(rank=cfg.lora_rank if lora else 0),
        eval_every=cfg.eval_every, eval_batches=cfg.eval_batches, save_every=save_every(total, cfg.eval_every),
        keep_last=1, log_every=1, tensorboard=False, seed=cfg.seed, resume="auto")


def save_every(total_steps: int, eval_every: int) -> int:
    """Checkpoint about four times a run (at least every 10 steps apart), on steps that are validated anyway: the
    trainer validates at every save, and the wall-clock plan budgets only the ``eval_every`` validations."""
    every = max(10, math.ceil(total_steps / 4))
    return math.ceil(every / eval_every) * eval_every if eval_every else every


# ---------------------------------------------------------------------------------------------------- results
def heldout_comparison(final: Path, donor, tokenizer, cfg: HealConfig, progress: bool) -> dict:
    """Held-out perplexity of the healed student and of the donor on the first ``eval_documents`` validation
    documents of the training data (never trained on), same windows for both."""
    from ..eval.perplexity import heldout_perplexity
    from ..models import XATLForCausalLM

    texts = heldout_texts(cfg)
    student = XATLForCausalLM.from_pretrained(final).eval()
    kw = dict(window=cfg.eval_window, batch_size=4, progress=progress)
    s = heldout_perplexity(student, tokenizer, texts, **kw)
    d = heldout_perplexity(donor, tokenizer, texts, **kw)
    return {"documents": len(texts), "window": cfg.eval_window, "student": s, "donor": d,
            "ratio": s["perplexity"] / d["perplexity"]}


def heldout_texts(cfg: HealConfig) -> list[str]:
    from ..data import DataConfig, validation_documents

    docs = validation_documents(DataConfig(sources=cfg.data, block_size=cfg.block_size,
                                           max_documents=cfg.max_documents))
    return [t for t in docs["text"] if t][: cfg.eval_documents]

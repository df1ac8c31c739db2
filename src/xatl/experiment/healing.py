"""Students healed inside a study: a :class:`~xatl.experiment.schema.StudentSpec` with ``heal`` set runs
:func:`xatl.heal.heal` (attention transfer, then distillation + LM loss with LoRA) instead of the plain recipe.

Its budget is the recipe's own ``train`` budget: the same optimizer steps, micro-batch, accumulation and block, so
a healed student sees exactly as many training tokens as the plain XATL and scratch students it is compared
with. Its output lives in ``students/<id>/heal/`` (``heal.json``, ``student/``, ``train/``).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ..errors import ConfigError

SET_BY_RECIPE = ("donor", "out_dir", "mixer", "attention_layers", "mixer_options", "budget", "data", "block_size",
                 "max_documents", "micro_batch_size", "grad_accum", "eval_every", "eval_batches", "eval_documents",
                 "eval_window", "seed", "overwrite")
"""HealConfig fields a study sets from its recipe (a student's ``heal`` mapping may set every other one)."""

HEAL_DIR = "heal"


def heal_config(recipe, run, donor: str, out_dir: str | Path):
    """The :class:`xatl.heal.HealConfig` of student run ``run`` (a StudentRun whose spec has ``heal`` set)."""
    from ..heal import HealConfig

    spec, t, d = run.spec, recipe.train, recipe.data
    cfg = HealConfig(donor=donor, out_dir=str(out_dir), mixer=run.mixer, attention_layers=list(spec.attention_layers),
                     mixer_options=dict(spec.mixer_options), budget=f"{t.max_steps}steps", data=list(d.sources),
                     block_size=d.block_size, max_documents=d.max_documents, micro_batch_size=t.micro_batch_size,
                     grad_accum=t.grad_accum, eval_every=t.eval_every, eval_batches=t.eval_batches, eval_documents=0,
                     seed=run.seed, **(spec.heal or {}))
    # a recipe states its students' architecture, and its baselines share it: heal's own long-context defaults
    # (LONG_CONTEXT_OPTIONS) are not added here; a recipe sets them itself (the default recipe does)
    cfg.mixer_options = dict(spec.mixer_options)
    return cfg


def check_heal_spec(spec) -> tuple[str, str] | None:
    """(field, problem) when student ``spec``'s ``heal`` mapping cannot be run, else None."""
    from ..heal import HealConfig

    valid = [f.name for f in fields(HealConfig) if f.name not in SET_BY_RECIPE]
    for key in spec.heal:
        if key not in valid:
            why = "is set by the recipe itself" if key in SET_BY_RECIPE else "is not a HealConfig field"
            return f"heal.{key}", f"{why}; heal may set: {', '.join(valid)}"
    try:
        HealConfig(donor="donor", out_dir="out", **spec.heal)
    except (ConfigError, TypeError, ValueError) as e:
        return "heal", str(e)
    if spec.lr is not None:
        return "lr", "a healed student takes its learning rates from heal (heal.lr, heal.align_lr); remove lr"
    if spec.unfreeze != "never":
        return "unfreeze", "a healed student has no unfreeze schedule (heal.stage2: lora, unfreeze or frozen)"
    if spec.copy.strip() not in ("default", "all"):
        return "copy", "a healed student copies every shared donor weight (copy: all); remove copy"
    return None


def run_heal(recipe, run, donor: str, stage_dir: Path, dataset, progress: bool) -> dict:
    """Heal ``run`` into ``stage_dir/heal`` on the study's ``dataset`` (resuming a killed run) -> the stage result."""
    from ..heal import heal

    result = heal(heal_config(recipe, run, donor, stage_dir / HEAL_DIR), dataset=dataset, progress=progress)
    return {"path": str(result.final_dir), "plan": result.plan,
            "train_seconds": result.results.get("train_seconds"),
            "flops": (result.results.get("summary") or {}).get("flops")}

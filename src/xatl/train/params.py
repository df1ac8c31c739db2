"""Which parameters train when: the freeze plan, AdamW parameter groups, and LoRA on the copied weights.

Copied weights are exactly the student tensors whose status is ``copied`` in the student's transfer report
(``TransferReport.copied_parameters()``), matched by full name, never by substring. Tied tensors are the same
``nn.Parameter`` as their source, so they follow it. Parameters are tracked by identity, so the plan survives
LoRA injection (which renames the wrapped weights).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import TrainingError
from ..mixers.registry import keeps_donor_attention

log = logging.getLogger(__name__)

FRESH, COPIED = "fresh", "copied"


@dataclass
class ParamPlan:
    """fresh: train through the LM stage. copied: frozen until the unfreeze point (with LoRA: the adapters).
    fixed: never train (with LoRA: the copied weights under the adapters). align: what the alignment stage
    trains (LCI mixers' parameters). Lists of (name at plan time, parameter)."""

    fresh: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    copied: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    fixed: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    align: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    lora_targets: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: sum(p.numel() for _, p in getattr(self, k)) for k in ("fresh", "copied", "fixed", "align")}


def copied_parameters(model: nn.Module, report) -> list[tuple[str, nn.Parameter]]:
    """The model's parameters named ``copied`` by ``report`` (each parameter once). TrainingError when the report
    names a tensor the model does not have (a report of another model)."""
    named = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers())
    out, seen = [], set()
    for name in report.copied_parameters():
        if name not in named:
            if name in buffers:
                continue
            raise TrainingError(f"the transfer report names {name!r}, which the model does not have; the report "
                                "belongs to another model: re-convert the student with `xatl convert`")
        p = named[name]
        if id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def build_plan(model: nn.Module, report, freeze: str, lora_rank: int = 0) -> ParamPlan:
    """Split the model's parameters into fresh / copied (and the LoRA targets when ``lora_rank``)."""
    copied = copied_parameters(model, report) if report is not None else []
    if freeze == COPIED and report is None:
        raise TrainingError("freezing copied weights needs the student's transfer_report.json; pass a student "
                            "directory from `xatl convert`, or use --freeze none")
    ids = {id(p) for _, p in copied}
    plan = ParamPlan(fresh=[(n, p) for n, p in model.named_parameters() if id(p) not in ids], copied=copied)
    if lora_rank:
        if not copied:
            raise TrainingError("LoRA goes on the copied weights, but the model has none (no transfer report or "
                                "nothing copied); drop --lora-rank")
        plan.lora_targets = [n[: -len(".weight")] for n, _ in copied if n.endswith(".weight")
                             and isinstance(model.get_submodule(n[: -len(".weight")]), nn.Linear)]
        if not plan.lora_targets:
            raise TrainingError("no copied linear layer to put LoRA adapters on; drop --lora-rank")
    plan.align = align_parameters(model, ids if freeze == COPIED else set())
    return plan


def align_parameters(model: nn.Module, exclude: set[int]) -> list[tuple[str, nn.Parameter]]:
    """Parameters of the LCI mixers (every layer whose mixer does not keep the donor's softmax attention), minus
    ``exclude``."""
    config = model.config
    if getattr(config, "model_type", None) != "xatl":
        return []
    out = []
    for i, kind in enumerate(config.layer_mixers):
        if keeps_donor_attention(kind):
            continue
        prefix = f"model.layers.{i}.mixer."
        out += [(prefix + n, p) for n, p in model.model.layers[i].mixer.named_parameters() if id(p) not in exclude]
    return out


def add_lora(model: nn.Module, plan: ParamPlan, rank: int, alpha: float | None, dropout: float) -> None:
    """Inject LoRA adapters (peft) into the copied linear layers. Afterwards plan.copied holds the adapters and
    plan.fixed the copied weights, which never train."""
    from peft import LoraConfig, inject_adapter_in_model

    before = {id(p) for p in model.parameters()}
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank, lora_dropout=dropout,
                        target_modules=plan.lora_targets)
    inject_adapter_in_model(config, model)
    adapters = [(n, p) for n, p in model.named_parameters() if id(p) not in before]
    plan.fixed, plan.copied = plan.copied, adapters
    log.info("LoRA rank %d on %d copied linear layers: %d adapter parameters", rank, len(plan.lora_targets),
             sum(p.numel() for _, p in adapters))


def adapter_state_dict(model: nn.Module, plan: ParamPlan, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The LoRA adapter tensors by their current names (taken from ``state``, the model's whole state, when given:
    a sharded model's own parameters are shards)."""
    ids = {id(p) for _, p in plan.copied}
    names = [n for n, p in model.named_parameters() if id(p) in ids]
    if state is not None:
        return {n: state[n].detach().cpu().clone() for n in names}
    named = dict(model.named_parameters())
    return {n: named[n].detach().cpu().clone() for n in names}


def base_state_dict(model: nn.Module, plan: ParamPlan, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The model's state (or ``state``) without adapters, under the original names (what ``from_pretrained``
    expects)."""
    state = model.state_dict() if state is None else state
    if not plan.lora_targets:
        return state
    adapters = set(adapter_state_dict(model, plan, state))
    return {k.replace(".base_layer.", "."): v for k, v in state.items() if k not in adapters}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base weight and put the plain layer back (in place)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, module.get_base_layer())
    return model


def set_trainable(model: nn.Module, plan: ParamPlan, stage: str, copied_trains: bool) -> int:
    """Set ``requires_grad`` for ``stage`` ("align" or "lm"); returns the number of trainable parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    active = plan.align if stage == "align" else plan.fresh + (plan.copied if copied_trains else [])
    for _, p in active:
        p.requires_grad_(True)
    return sum(p.numel() for _, p in active)


def param_groups(entries: dict[str, list[tuple[str, nn.Parameter]]], weight_decay: float) -> list[dict]:
    """AdamW groups per role, split by decay: matrices and embeddings decay, biases and norm weights do not.
    Each group carries its ``role`` (the key of ``entries``) so the LR schedule can set it."""
    groups = []
    for role, named in entries.items():
        decay = [p for _, p in named if p.ndim >= 2]
        no_decay = [p for _, p in named if p.ndim < 2]
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "weight_decay": wd, "role": role, "lr": 0.0})
    return groups


def make_optimizer(groups: list[dict], betas, fused_ok: bool) -> torch.optim.AdamW:
    """AdamW over ``groups``; parameters without a gradient (frozen) are skipped by AdamW, so they stay exact."""
    kwargs = {"fused": True} if fused_ok else {"foreach": True}
    return torch.optim.AdamW(groups, betas=tuple(betas), eps=1e-8, **kwargs)

"""The donor as a teacher: its logits for distillation, and its attention outputs for the alignment stage.

Alignment compares, layer by layer, the student's mixer with the donor's attention *on the same inputs*. The donor's
attention is re-expressed as an all-softmax XATL twin (``xatl.transfer(donor, mixer="softmax", copy="all")``, which
reproduces the donor's logits exactly: the identity test). Its mixers take the same ``(x, ctx)`` as the student's,
so whatever the donor family, the teacher's mixer inputs and outputs are read with forward hooks and the
student's LCI mixers are run on those very inputs (as in LoLCATs / RADLADS stage 1).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainingError
from ..mixers.registry import keeps_donor_attention

log = logging.getLogger(__name__)


def lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. logits (B, T, V), ids (B, T) -> scalar (float32)."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over positions. Logits (B, T, V) -> scalar."""
    V = student_logits.shape[-1]
    s = F.log_softmax(student_logits.reshape(-1, V).float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.reshape(-1, V).float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def resolve_donor(donor, cfg, student_config, report) -> nn.Module:
    """The donor model (eval mode, no grad) from ``donor`` (a loaded model or a path), else ``cfg.donor``, else
    the donor path recorded in the transfer report (when it exists on this machine)."""
    if isinstance(donor, nn.Module):
        model = donor
    else:
        path = donor or cfg.donor
        if path is None and report is not None:
            recorded = report.donor.get("name_or_path") or ""
            path = recorded if recorded and Path(recorded).exists() else None
        if path is None:
            raise TrainingError("alignment and distillation need the donor model; pass --donor DIR (the model "
                                "the student was converted from)")
        from ..donors.load import load_donor, resolve_source

        model = load_donor(resolve_source(os.fspath(path)))
    model.eval().requires_grad_(False)
    if model.config.vocab_size != student_config.vocab_size:
        raise TrainingError(f"the donor's vocabulary ({model.config.vocab_size}) differs from the student's "
                            f"({student_config.vocab_size}); pass the donor the student was converted from")
    return model


def softmax_twin(donor: nn.Module, student_config) -> nn.Module:
    """The donor as an all-softmax XATL model (same logits), whose mixers mirror the student's layer by layer."""
    from ..transfer import student_config as make_config
    from ..transfer import transfer

    try:
        config = make_config(donor.config, mixer="softmax")
    except Exception as e:
        raise TrainingError(f"the donor cannot be mirrored for alignment ({e})") from None
    if config.num_hidden_layers != student_config.num_hidden_layers or \
            config.hidden_size != student_config.hidden_size:
        raise TrainingError("the donor's shape differs from the student's; pass the donor the student was "
                            "converted from")
    twin, _ = transfer(donor, config, copy="all", consume_donor=False)
    return twin.eval().requires_grad_(False)


class MixerAligner(nn.Module):
    """The student's LCI mixers, trained to reproduce the teacher's attention outputs on the teacher's inputs.

    forward(inputs) with inputs = [(x (B, T, C), ctx, target (B, T, C)) per aligned layer] returns the per-layer
    normalised error ``mean((mixer(x) - target)^2) / mean(target^2)`` as a (L,) tensor; the loss is its mean.
    Wrapped in DDP as a whole, so its gradients are all-reduced like a model's.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        kinds = student.config.layer_mixers
        self.layers = [i for i, k in enumerate(kinds) if not keeps_donor_attention(k)]
        if not self.layers:
            raise TrainingError("the student has no LCI layer to align (every layer is softmax attention)")
        self.mixers = nn.ModuleList(student.model.layers[i].mixer for i in self.layers)

    def forward(self, inputs) -> torch.Tensor:
        errs = []
        for mixer, (x, ctx, target) in zip(self.mixers, inputs):
            y, _ = mixer(x, ctx)
            errs.append((y.float() - target.float()).pow(2).mean() / target.float().pow(2).mean().clamp_min(1e-12))
        return torch.stack(errs)


@torch.no_grad()
def teacher_activations(twin: nn.Module, layers: list[int], ids: torch.Tensor) -> list[tuple]:
    """Run the twin on ids (B, T); return [(mixer input x, ctx, mixer output y)] for each of ``layers``."""
    captured: dict[int, tuple] = {}
    hooks = []
    for i in layers:
        def hook(module, args, kwargs, output, i=i):
            x = args[0] if args else kwargs["x"]
            ctx = args[1] if len(args) > 1 else kwargs["ctx"]
            captured[i] = (x.detach(), ctx, output[0].detach())
        hooks.append(twin.model.layers[i].mixer.register_forward_hook(hook, with_kwargs=True))
    try:
        twin.model(input_ids=ids, use_cache=False)          # the trunk only: no LM head needed
    finally:
        for h in hooks:
            h.remove()
    return [captured[i] for i in layers]


@torch.no_grad()
def alignment_errors(student: nn.Module, donor: nn.Module, ids: torch.Tensor) -> list[float]:
    """Per-layer normalised error of each LCI mixer against the donor's attention on the same inputs (ids (B, T));
    the quantity the alignment stage minimises, listed for the student's non-softmax layers in order."""
    twin = softmax_twin(donor, student.config).to(ids.device)
    aligner = MixerAligner(student)
    was_training = student.training
    student.eval()
    errs = aligner(teacher_activations(twin, aligner.layers, ids))
    student.train(was_training)
    return errs.tolist()


@torch.no_grad()
def kl_to_donor(student: nn.Module, donor: nn.Module, ids: torch.Tensor) -> float:
    """KL(donor || student) of the next-token distributions (temperature 1), mean over positions. ids (B, T)."""
    was_training = student.training
    student.eval()
    kl = kd_loss(student(input_ids=ids, use_cache=False).logits, donor(input_ids=ids, use_cache=False).logits, 1.0)
    student.train(was_training)
    return kl.item()

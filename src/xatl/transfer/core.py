"""XATL weight transfer: build the student and copy into it every weight it shares with the donor.

The plan is read from the donor family's adapter table (``xatl.donors``); copies are bit-exact (slices and
transposes only; K/V heads repeated for GQA donors where a mixer has full heads). The student is built on the
meta device and materialised tensor by tensor, so a conversion holds one donor plus the student's *fresh*
tensors; with ``consume_donor=True`` copied tensors are moved, not cloned (what ``xatl convert`` does).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from .. import __version__
from ..donors.registry import get_adapter
from ..donors.spec import ATTENTION_ROLES, COMPONENTS, DEFAULT_COPY, ROLE_COMPONENT, STUDENT_TARGET, slot_of
from ..errors import ConfigError, TransferError
from ..mixers.base import Slot
from ..models.configuration_xatl import XATLConfig
from ..models.modeling_xatl import XATLForCausalLM
from .config import check_skeleton, student_config
from .report import TransferReport

log = logging.getLogger(__name__)


def parse_copy(copy: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise a copy selection: names from COMPONENTS, "all", "none" (from scratch), or "default"; an empty
    string is refused (``--copy ""`` used to mean "copy nothing" silently); an empty sequence is a normalised
    "none"."""
    if copy is None:
        return DEFAULT_COPY
    items = [c.strip() for c in (copy.split(",") if isinstance(copy, str) else copy) if c.strip()]
    if not items and isinstance(copy, str):
        raise ConfigError("the copy set is empty; name components (embed, norms, mlp, lm_head, o_proj, qkv), or "
                          "all, default, or none to train from scratch")
    out: list[str] = []
    for c in items:
        if c == "all":
            out.extend(COMPONENTS)
        elif c == "default":
            out.extend(DEFAULT_COPY)
        elif c == "none":
            continue
        elif c in COMPONENTS:
            out.append(c)
        else:
            raise ConfigError(f"unknown copy component {c!r}; choose from: {', '.join(COMPONENTS)} "
                              "(or all, default, none)")
    return tuple(c for c in COMPONENTS if c in out)


def transfer(donor: nn.Module, config: XATLConfig | None = None, copy: str | Iterable[str] | None = None, *,
             consume_donor: bool = False, seed: int | None = None) -> tuple[XATLForCausalLM, TransferReport]:
    """Build an XATL student from ``donor`` (a loaded HF causal LM) and copy the shared weights.

    config: the student's XATLConfig (default: ``student_config(donor.config)``, a retention student).
    copy: components to copy (COMPONENTS; default DEFAULT_COPY = all shared but Q/K/V). Softmax layers of the
        student receive all their donor attention weights unless nothing is copied (``"none"``: from scratch).
    consume_donor: move copied tensors instead of cloning them and free the donor (it is unusable afterwards).
    seed: seed for the fresh parameters' initialisation.
    Returns (student in eval mode, report).
    """
    dcfg = donor.config
    adapter = get_adapter(dcfg.model_type)
    config = config if config is not None else student_config(dcfg)
    check_skeleton(config, dcfg)
    selected = parse_copy(copy)
    if config.tie_word_embeddings and (("embed" in selected) != ("lm_head" in selected)):
        raise ConfigError("this donor ties its LM head to its token embeddings: copy both 'embed' and 'lm_head' "
                          "or neither")
    param = next(donor.parameters())
    with torch.device("meta"):
        student = XATLForCausalLM(config)
    student_shapes = {n: t.shape for n, t in student.state_dict().items()}
    tied_student = {"lm_head.weight"} if config.tie_word_embeddings else set()

    donor_sd = donor.state_dict()
    for name, tensor in donor_sd.items():
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all()):
            raise TransferError(f"donor tensor {name!r} holds NaN or inf values; the donor is damaged: re-fetch or "
                                "re-export it (nothing was written)")
    planner = _Planner(student, adapter, dcfg, selected, student_shapes, consume_donor)
    embed = _embedding_name(donor_sd, adapter)
    planning = param.device.type == "meta"            # a plan: shapes and fates only (xatl.transfer.plan)
    same = _same_tensor(donor, donor_sd, planning)
    for name, tensor in donor_sd.items():
        tied = (getattr(dcfg, "tie_word_embeddings", False) and name != embed and embed is not None
                and same(name, embed))
        planner.add(name, tensor, tied_to=embed if tied else None)
    del donor_sd

    if seed is not None:
        torch.manual_seed(seed)
    if planning:
        inits = _describe_fresh(student, planner.values, skip=tied_student)
    else:
        inits = _materialise(student, planner.values, skip=tied_student, device=param.device, dtype=param.dtype)
    if config.tie_word_embeddings:
        student.tie_weights()
    if consume_donor:
        donor.to(torch.device("meta"))
    student.generation_config = _copy_generation_config(donor, student)
    student.eval()

    report = TransferReport(
        donor={"model_type": dcfg.model_type, "name_or_path": getattr(dcfg, "_name_or_path", "") or "",
               "num_parameters": planner.donor_numel, "dtype": str(param.dtype).replace("torch.", "")},
        student={"mixer": config.mixer, "attention_layers": list(config.attention_layers),
                 "layer_mixers": config.layer_mixers, "mixer_options": dict(config.mixer_options),
                 "num_parameters": sum(p.numel() for p in student.parameters())},
        copy=list(selected), donor_tensors=planner.donor_records, xatl_version=__version__,
    )
    for name, shape in student_shapes.items():
        rec = {"shape": list(shape), "dtype": str(param.dtype).replace("torch.", "")}
        if name in planner.student_records:
            rec.update(planner.student_records[name])
        elif name in tied_student:
            rec.update(status="tied", **{"from": "model.embed_tokens.weight"}, component="lm_head",
                       init="tied to model.embed_tokens.weight")
        else:
            rec.update(status="initialized", **{"from": None}, component=_student_component(name),
                       init=inits.get(name, "initialised by its module"))
        report.student_tensors[name] = rec
    report.check_complete(planner.donor_records, student_shapes)
    return student, report


def _same_tensor(donor: nn.Module, sd: dict, planning: bool):
    """``same(a, b)``: whether donor tensors ``a`` and ``b`` are one tensor (tied). Real tensors compare storage;
    meta tensors have none, so they compare parameter identity."""
    if planning:
        ids = {n: id(t) for n, t in donor.state_dict(keep_vars=True).items()}
        return lambda a, b: ids[a] == ids[b]
    return lambda a, b: sd[a].data_ptr() == sd[b].data_ptr()


def _describe_fresh(student: XATLForCausalLM, values: dict[str, torch.Tensor], skip: set[str]) -> dict[str, str]:
    """{name: init description} of the student parameters a transfer would initialise, leaving all on meta."""
    std = student.config.initializer_range
    inits = {}
    for mod_name, module in student.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for pname, _ in module.named_parameters(recurse=False):
            if prefix + pname not in values and prefix + pname not in skip:
                inits[prefix + pname] = _describe_init(module, pname, std)
    return inits


def _embedding_name(sd: dict, adapter) -> str | None:
    """The donor's token-embedding tensor name (the one an LM head may be tied to)."""
    for name in sd:
        match = adapter.match(name)
        if match is not None and match[1][0].role == "embed":
            return name
    return None


class _Planner:
    """Walks donor tensors, decides each piece's fate, records both sides, and keeps the values to assign."""

    def __init__(self, student, adapter, dcfg, selected, student_shapes, consume):
        self.student, self.adapter, self.dcfg = student, adapter, dcfg
        self.selected, self.shapes, self.consume = selected, student_shapes, consume
        self.values: dict[str, torch.Tensor] = {}
        self.donor_records: dict[str, dict] = {}
        self.student_records: dict[str, dict] = {}
        self.slot_notes: dict[str, str] = {}      # student tensor -> the mixer's Slot.note ("C <- Q", ...)
        self.donor_numel = 0

    def add(self, name: str, tensor: torch.Tensor, tied_to: str | None) -> None:
        match = self.adapter.match(name)
        if match is None and self.adapter.unused_reason(name) is not None:
            self.donor_numel += tensor.numel()
            self.donor_records[name] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).replace("torch.", ""),
                                        "layer": None, "roles": [], "component": None, "to": [], "status": "unused",
                                        "reason": self.adapter.unused_reason(name)}
            return
        if match is None:
            raise TransferError(
                f"the {self.dcfg.model_type} adapter table has no entry for donor tensor {name!r}; this donor "
                "has a feature xatl does not mirror (please report it)"
            )
        layer, pieces = match
        rec = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).replace("torch.", ""), "layer": layer,
               "roles": [p.role for p in pieces], "component": ROLE_COMPONENT[pieces[0].role], "to": []}
        self.donor_records[name] = rec
        if tied_to is not None:
            rec.update(status="tied", reason=f"same tensor as {tied_to} (tied embeddings)")
            return
        self.donor_numel += tensor.numel()
        reasons = []
        for piece in pieces:
            target, reason = self._target(piece.role, layer)
            if target is not None:
                value = piece.transform(tensor, self.dcfg)
                value, note, reason = self._fit(value, target, piece.role)
                if value is not None:
                    value = value.contiguous() if self.consume else value.contiguous().clone()
                    self.values[target] = value
                    rec["to"].append(target)
                    self.student_records[target] = {
                        "status": "copied", "from": name, "component": ROLE_COMPONENT[piece.role],
                        "transform": piece.transform.name + (f"+{note}" if note else ""),
                    }
                    if target in self.slot_notes:
                        self.student_records[target]["note"] = self.slot_notes[target]
                    continue
            reasons.append(f"{piece.role}: {reason}")
        n_used = len(rec["to"])
        rec["status"] = "copied" if n_used == len(pieces) else ("partly copied" if n_used else "unused")
        if reasons:
            rec["reason"] = "; ".join(reasons)

    def _target(self, role: str, layer: int | None) -> tuple[str | None, str]:
        """(student tensor name, "") or (None, why not)."""
        component = ROLE_COMPONENT[role]
        if role not in ATTENTION_ROLES:
            if component not in self.selected:
                return None, f"'{component}' not selected for copying (--copy)"
            target = STUDENT_TARGET[role].format(layer)
            if target not in self.shapes:
                raise TransferError(f"student has no tensor {target!r} for donor role {role!r}: skeleton mismatch")
            return target, ""
        block = self.student.model.layers[layer]
        kind = role.split(".")[1]
        if getattr(block.mixer, "keeps_donor_attention", False):
            if not self.selected:
                return None, "nothing is copied into a from-scratch student (--copy none)"
        elif component not in self.selected:
            return None, f"'{component}' not selected for copying (--copy)"
        key = slot_of(role)
        slot = block.mixer.transfer_slots().get(key)
        if not isinstance(slot, Slot):
            what = f"{key} projection" if len(key) == 1 else key
            return None, slot or f"mixer {block.mixer.name!r} has no place for the donor's {what}"
        target = f"model.layers.{layer}.mixer.{slot.module}.{kind}"
        if target not in self.shapes:
            return None, f"student {target.rsplit('.', 1)[0]} has no {kind}"
        if slot.note:
            self.slot_notes[target] = slot.note
        return target, ""

    def _fit(self, value: torch.Tensor, target: str, role: str):
        """(value, note, "") reshaped to the target's shape, or (None, "", why not)."""
        shape = self.shapes[target]
        if tuple(value.shape) == tuple(shape):
            return value, "", ""
        rows, trows = value.shape[0], shape[0]
        head_dim = self.student.config.head_dim
        if slot_of(role) in ("k", "v", "k_norm") and trows % rows == 0 and rows % head_dim == 0 and tuple(value.shape[1:]) == tuple(shape[1:]):
            n_rep = trows // rows
            heads = value.reshape(rows // head_dim, head_dim, *value.shape[1:])
            return heads.repeat_interleave(n_rep, dim=0).reshape(shape), f"repeat_kv({n_rep})", ""
        return None, "", f"donor shape {list(value.shape)} does not fit student {target} {list(shape)}"


def _student_component(name: str) -> str:
    if ".mixer." in name:
        return "mixer"
    if ".mlp." in name:
        return "mlp"
    if "norm" in name:
        return "norms"
    if name.startswith("lm_head"):
        return "lm_head"
    return "embed"


def _describe_init(module: nn.Module, pname: str, std: float) -> str:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return f"normal(0, {std})" if pname == "weight" else "zeros"
    if "Norm" in type(module).__name__:
        if pname == "weight" and getattr(module, "offset", 0.0):
            return f"zeros (the norm scales by {module.offset:g} + weight)"
        return "ones" if pname == "weight" else "zeros"
    notes = getattr(module, "init_notes", {})
    return notes.get(pname, f"{type(module).__name__}._xatl_init")


@torch.no_grad()
def _materialise(student: XATLForCausalLM, values: dict[str, torch.Tensor], skip: set[str], device, dtype):
    """Replace meta tensors by copied values or fresh, initialised ones. Returns {name: init description}."""
    std = student.config.initializer_range
    inits: dict[str, str] = {}
    for mod_name, module in student.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        touched = False
        for pname, p in list(module.named_parameters(recurse=False)):
            full = prefix + pname
            if full in skip:
                continue
            if full in values:
                new = nn.Parameter(values.pop(full), requires_grad=p.requires_grad)
                new._is_hf_initialized = True
            elif p.is_meta:
                new = nn.Parameter(torch.empty_like(p, device=device, dtype=dtype), requires_grad=p.requires_grad)
                inits[full] = _describe_init(module, pname, std)
            else:
                continue
            module._parameters[pname] = new
            touched = True
        for bname, b in list(module.named_buffers(recurse=False)):
            if b is not None and b.is_meta:
                module._buffers[bname] = torch.empty_like(b, device=device, dtype=b.dtype)
                touched = True
        if touched:
            student._init_weights(module)
    if values:
        raise TransferError(f"copied tensors without a student parameter: {sorted(values)[:5]}")
    left = [n for n, t in list(student.named_parameters()) + list(student.named_buffers()) if t.is_meta]
    if left and left != ["lm_head.weight"]:
        raise TransferError(f"student tensors left uninitialised: {left[:5]}")
    return inits


def _copy_generation_config(donor, student):
    import copy as _copy

    gc = getattr(donor, "generation_config", None)
    return _copy.deepcopy(gc) if gc is not None else student.generation_config

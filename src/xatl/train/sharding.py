"""Sharded training on PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``): parameters, gradients and AdamW
state are split across the processes, so a student too big for one device's memory trains on several.

    plan = shard(model, plan, device=device)  # after LoRA injection; every process, same order
    state = full_state_dict(model)            # collective: every process calls it; a plain CPU dict
    opt_state = optimizer_state(opt)          # collective; the same layout as opt.state_dict()

Why FSDP2 fits the paper's recipe where FSDP1 and DeepSpeed ZeRO do not: FSDP2 shards each parameter on its
own (a ``DTensor`` per parameter), so frozen and trainable parameters live side by side in one unit, and
``requires_grad`` may change mid-run (the copied weights unfreeze): the next backward reduce-scatters the
gradients of whatever requires one. FSDP1 (``use_orig_params``) and ZeRO flatten a unit's parameters into one
buffer when they wrap it and fix the trainable set then.

Units: each mixer (so the alignment stage, which calls mixers directly, gathers their weights), each block
(``_no_split_modules`` of the model, the Hugging Face convention: ``XATLBlock``, ``LlamaDecoderLayer``, ...) and
the root (embeddings, final norm, LM head; a tied head stays in one unit with its embedding).

Every forward is collective: all processes must run the same number of forwards (``Trainer._evaluate`` pads a
process's share of the validation batches for this).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import TrainingError
from .params import ParamPlan

log = logging.getLogger(__name__)


def block_classes(model: nn.Module) -> set[str]:
    """The class names a model declares as its transformer blocks (``_no_split_modules``)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    if not names:
        raise TrainingError(f"{type(model).__name__} declares no transformer block class (_no_split_modules), so "
                            "it cannot be sharded layer by layer; train it with --sharding none")
    return names


def shard(model: nn.Module, plan: ParamPlan, *, device: torch.device, reshard_after_forward: bool = True) -> ParamPlan:
    """Apply ``fully_shard`` to ``model`` in place (mixers, blocks, root) and return ``plan`` with each entry
    pointing at the sharded parameter that replaced it (sharding replaces every ``nn.Parameter``).

    The main process holds the weights; the others may hold the same architecture on the meta device (no memory):
    they get their shards from the main process's whole state, and every buffer from its buffers."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        raise TrainingError("sharding='fsdp' needs several processes: launch with torchrun or accelerate launch "
                            "(see docs/training.md, 'Sharded training')")
    names = block_classes(model)
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise TrainingError(f"{type(model).__name__} has none of its block classes {sorted(names)}; train it with "
                            "--sharding none")
    main = dist.get_rank() == 0
    whole = model.state_dict() if main else {}      # the main process's weights, broadcast once sharded
    current = {}                         # id of each parameter -> its name now (LoRA renamed the wrapped weights)
    for name, p in model.named_parameters(remove_duplicate=False):
        current.setdefault(id(p), name)
    for block in blocks:
        mixer = getattr(block, "mixer", None)
        if isinstance(mixer, nn.Module) and any(True for _ in mixer.parameters()):
            fully_shard(mixer, reshard_after_forward=reshard_after_forward)
        fully_shard(block, reshard_after_forward=reshard_after_forward)
    fully_shard(model, reshard_after_forward=reshard_after_forward)
    _fill_from_main(model, whole, device)
    log.info("FSDP2: %d blocks sharded over %d processes", len(blocks), dist.get_world_size())
    named = dict(model.named_parameters(remove_duplicate=False))
    fix = lambda entries: [(n, named[current[id(p)]]) for n, p in entries]  # noqa: E731
    return ParamPlan(fresh=fix(plan.fresh), copied=fix(plan.copied), fixed=fix(plan.fixed), align=fix(plan.align),
                     lora_targets=list(plan.lora_targets))


def _fill_from_main(model: nn.Module, whole: dict, device: torch.device) -> None:
    """Give every process its shards of the main process's ``whole`` state, and the main process's buffers
    (non-persistent ones, such as RoPE's inverse frequencies, are not in a state dict)."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if any(p.is_meta for p in model.parameters()) or any(b.is_meta for b in model.buffers()):
        model.to_empty(device=device)
    set_model_state_dict(model, whole, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    for b in model.buffers():
        dist.broadcast(b.data, src=0)


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state as plain CPU tensors (collective when sharded; then on the main process only)."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # whole tensors, on the CPU of the main process only (the others get an empty dict)
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    # a tied parameter (LM head = embedding) comes back as two copies; share one tensor again, as model.state_dict()
    # does, so that save_pretrained sees the tie and writes the tensor once
    first: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if name in state:
            state[name] = state[first.setdefault(id(p), name)]
    return state


def optimizer_state(optimizer) -> dict:
    """``optimizer.state_dict()`` with whole tensors on the main process, the same file an unsharded run writes
    (so a checkpoint resumes under either). Collective: the shards are gathered one tensor at a time, and only
    the main process keeps them (on the CPU); the other processes' copy holds None in their place."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    main = dist.get_rank() == 0
    sd = optimizer.state_dict()
    state = {}
    for i in sorted(sd["state"]):                     # the same order on every process: gathers pair up
        state[i] = {}
        for k, v in sd["state"][i].items():
            if isinstance(v, DTensor):
                full = v.full_tensor()
                v = full.cpu() if main else None
            state[i][k] = v
    return {"state": state, "param_groups": sd["param_groups"]}


def load_optimizer_state(optimizer, state: dict) -> None:
    """Load a state of :func:`optimizer_state` (or of an unsharded run) on every process; each keeps its shards."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    optimizer.load_state_dict(state)
    for p, st in optimizer.state.items():
        if not isinstance(p, DTensor):
            continue
        for k, v in st.items():
            if not isinstance(v, DTensor) and v.shape == p.shape:      # exp_avg, exp_avg_sq (not the step count)
                st[k] = distribute_tensor(v.to(p.device), p.device_mesh, p.placements, src_data_rank=None)


def gradient_sync(model: nn.Module, enabled: bool) -> None:
    """FSDP2's ``no_sync``: with ``enabled`` False, a backward keeps whole gradients instead of reduce-scattering
    (gradient accumulation over micro-batches)."""
    model.set_requires_gradient_sync(enabled)


def as_float(norm: torch.Tensor) -> float:
    """The clip norm as a float (``clip_grad_norm_`` of sharded gradients returns a replicated DTensor)."""
    full = getattr(norm, "full_tensor", None)
    return (full() if full is not None else norm).item()


@torch.no_grad()
def init_root(model: nn.Module, device: torch.device) -> None:
    """Make the whole model FSDP's root: FSDP2 takes the first unit to run forward as the root, and the alignment
    stage would otherwise run a mixer first. One token, in eval mode (no dropout: the RNG is untouched)."""
    was = model.training
    model.eval()
    model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device), use_cache=False)
    model.train(was)

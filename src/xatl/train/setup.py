"""The pieces of a run around the loop: processes (accelerate), the model to train, the output directory, and
the final model directory."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelLoadError, OutputExistsError, TrainingError
from ..utils.fs import check_not_input
from ..utils.remote_code import reraise_refusal
from .checkpoint import CHECKPOINTS, latest_checkpoint
from .metrics import METRICS_FILE

log = logging.getLogger(__name__)

RUN_OUTPUTS = (CHECKPOINTS, METRICS_FILE, "final", "summary.json", "tensorboard")


# ---------------------------------------------------------------------------------------------- processes
ENGINES_HELP = ("xatl train runs single-process, DDP or FSDP2 (accelerate launch --multi_gpu, --use_fsdp --fsdp_version "
                "2, or --sharding fsdp under torchrun); see docs/training.md")
"""The fix named by every refusal of an accelerate engine."""


def _fsdp1_refusal(version) -> TrainingError:
    return TrainingError(f"accelerate is configured for FSDP version {version}; xatl train shards with FSDP2 only "
                         "(--fsdp_version 2, or --sharding fsdp under torchrun); see docs/training.md")


def _env_flag(name: str) -> bool:
    """Whether the environment turns ``name`` on (accelerate's truth values: true, 1, yes, y, on, t)."""
    return os.environ.get(name, "").strip().lower() in ("true", "1", "yes", "y", "on", "t")


def refuse_engines_from_env() -> bool:
    """Check what ``accelerate launch`` (or a user) put in the environment, before an ``Accelerator`` exists: creating
    one for DeepSpeed or Megatron-LM fails with an ImportError where they are not installed, and under torchrun on
    CPUs accelerate ignores ``ACCELERATE_USE_FSDP`` (the run would be DDP). -> whether FSDP2 is asked for
    (``ACCELERATE_USE_FSDP`` with ``FSDP_VERSION=2``); TrainingError for DeepSpeed, Megatron-LM and FSDP1 (also
    ``FSDP_VERSION`` unset: accelerate's default is 1)."""
    for name, engine in (("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"), ("ACCELERATE_USE_MEGATRON_LM", "Megatron-LM")):
        if _env_flag(name):
            raise TrainingError(f"accelerate is configured for {engine} ({name}={os.environ[name]}); {ENGINES_HELP}")
    if not _env_flag("ACCELERATE_USE_FSDP"):
        return False
    version = os.environ.get("FSDP_VERSION", "").strip()
    if version != "2":
        raise _fsdp1_refusal(f"{version or 1} (ACCELERATE_USE_FSDP is set and FSDP_VERSION is "
                             f"{repr(version) if version else 'unset'})")
    return True


def make_accelerator():
    """(the accelerate ``Accelerator`` of this process, whether accelerate was configured for FSDP2).

    Single process, DDP processes, or FSDP2 (``accelerate launch --use_fsdp --fsdp_version 2``: xatl then shards
    the model itself, see ``xatl.train.sharding``). FSDP1, DeepSpeed and XLA are refused, by the environment before
    the Accelerator is made (:func:`refuse_engines_from_env`) and by its distributed type after: they flatten
    parameters when they wrap them, and the freeze schedule changes the trainable set mid-run."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    fsdp2 = refuse_engines_from_env()
    # without CUDA, run on CPU: processes started by torchrun (`accelerate launch --multi_gpu` on a CPU machine)
    # then form a gloo process group instead of each believing it runs alone
    acc = Accelerator(cpu=not torch.cuda.is_available())
    kind = acc.distributed_type
    if kind == DistributedType.FSDP:
        version = getattr(acc.state.fsdp_plugin, "fsdp_version", 1)
        if version != 2:
            raise _fsdp1_refusal(version)
        return acc, True
    if kind != DistributedType.NO and not str(kind.value).startswith("MULTI_"):
        raise TrainingError(f"accelerate is configured for {kind.value}; {ENGINES_HELP}")
    return acc, fsdp2


@contextlib.contextmanager
def quiet_transformers():
    """No transformers progress bars (weight loading/saving) inside: they would break the training bar."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def use_bf16(setting, device: torch.device) -> bool:
    if setting == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return bool(setting)


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def all_reduce(t: torch.Tensor, op: str, world: int) -> torch.Tensor:
    """Sum or mean of ``t`` over the processes (``t`` itself with one process)."""
    if world == 1:
        return t
    import torch.distributed as dist

    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / world if op == "mean" else t


def broadcast(obj, acc):
    """``obj`` of the main process, on every process."""
    if acc.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj])[0]


def gather(obj, acc) -> list:
    if acc.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


# ---------------------------------------------------------------------------------------------- the model
def load_for_training(path: str | os.PathLike, *, meta: bool = False):
    """The model of a directory / .gguf / fetched asset, in fp32 and train mode. ``meta``: its architecture only,
    on the meta device, no weights read (a sharded run's other processes, which receive their shards from the
    main one: ``sharding.shard``)."""
    from ..eval.loading import load_weights, resolve_causal_lm

    src, config = resolve_causal_lm(path)
    if meta:
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, dtype=torch.float32).train()
    with quiet_transformers():
        model = load_weights(src, torch.float32, config=config)
    return model.train()


def load_tokenizer(src):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(src.path, **src.kwargs)
    except Exception as e:  # no tokenizer files: fine for training on ready token blocks
        reraise_refusal(str(src), e, ModelLoadError)
        return None


def load_report(model_dir):
    """The transfer report of the student in ``model_dir`` (None if it has none)."""
    from ..transfer.report import REPORT_FILE, TransferReport

    p = Path(model_dir) / REPORT_FILE
    return TransferReport.load(p) if p.is_file() else None


# ---------------------------------------------------------------------------------------------- out_dir
def prepare_out_dir(cfg, is_main: bool) -> Path | None:
    """Decide whether this run resumes; returns the checkpoint to resume from (or None for a fresh start).

    resume=True needs a checkpoint; resume=False refuses an out_dir holding a run unless ``overwrite`` (then the
    old run's outputs are removed); ``auto`` resumes when a checkpoint exists.
    """
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"out_dir {str(out)!r} is a file; choose a directory")
    check_not_input(out, cfg.model, "--model")
    ckpt = latest_checkpoint(out)
    if cfg.resume is True and ckpt is None:
        raise TrainingError(f"no checkpoint to resume from in {str(out / CHECKPOINTS)!r}; drop --resume to start "
                            "a fresh run")
    fresh = cfg.resume is False or ckpt is None
    held = [n for n in RUN_OUTPUTS if (out / n).exists()] if fresh else []
    if fresh and cfg.resume is False and ckpt is not None and not cfg.overwrite:
        raise OutputExistsError(f"out_dir {str(out)!r} already holds a run ({', '.join(held)}); resume it "
                                "(--resume), choose a new --out, or pass --overwrite to replace it")
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        lock_run_dir(out)                      # before anything of an earlier run is removed
        for name in held:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return None if fresh else ckpt


LOCK_FILE = ".train.lock"
_LOCKS: dict[str, object] = {}


def lock_run_dir(out: Path) -> None:
    """Hold ``out/.train.lock`` until :func:`unlock_run_dir` (or the process ends): a second ``xatl train`` on the
    same --out is refused in one line instead of racing the first (its pruning deleted the other's files)."""
    from ..utils.fs import acquire_lock

    _LOCKS[str(out.resolve())] = acquire_lock(out / LOCK_FILE, f"another training run is working in {str(out)!r}; "
                                              "wait for it to finish or choose another --out")


def unlock_run_dir(out: Path) -> None:
    f = _LOCKS.pop(str(Path(out).resolve()), None)
    if f is not None:
        f.close()


def save_final(model, out: Path, tokenizer, src, save=None) -> Path:
    """``out/final``: a loadable model directory with the tokenizer and the input student's transfer report."""
    from ..utils.fs import atomic_directory

    final = out / "final"
    with atomic_directory(final, overwrite=True) as tmp, quiet_transformers():
        (save or model.save_pretrained)(tmp)
        copy_companions(tmp, tokenizer, src)
    return final


def copy_companions(dest: Path, tokenizer, src) -> None:
    """Tokenizer and transfer_report.json of the input model, beside saved weights."""
    from ..transfer.report import REPORT_FILE

    if tokenizer is not None:
        tokenizer.save_pretrained(dest)
    report = Path(src.path) / REPORT_FILE
    if report.is_file():
        shutil.copyfile(report, Path(dest) / REPORT_FILE)

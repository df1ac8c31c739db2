"""Training: continued pretraining of XATL students (the paper's freeze/unfreeze recipe), with optional attention
alignment, distillation and LoRA, on Hugging Face ``accelerate`` (single process, DDP, or FSDP2 sharding).

    from xatl.train import TrainConfig, train
    cfg = TrainConfig(model="students/smol-ret", out_dir="runs/smol-ret", max_steps=2000,
                      unfreeze="lit:threshold=0.01,patience=1")
    result = train(cfg, blocks)          # blocks: DatasetDict(train, validation) of input_ids

The names import on first use, so the settings (``xatl train --help``) load without torch.
"""

from ..utils.lazy import lazy_exports

_EXPORTS = {"AlignConfig": "config", "KDConfig": "config", "LoRAConfig": "config", "TrainConfig": "config",
            "TrainResult": "loop", "train": "loop", "LITRule": "schedule", "UnfreezeSchedule": "schedule",
            "UnfreezeSpec": "schedule", "lr_factor": "schedule", "parse_unfreeze": "schedule"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

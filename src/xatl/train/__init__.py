"""Training: continued pretraining of XATL students (the paper's freeze/unfreeze recipe), with optional attention
alignment, distillation and LoRA, on Hugging Face ``accelerate`` (single process or DDP).

    from xatl.train import TrainConfig, train
    cfg = TrainConfig(model="students/smol-ret", out_dir="runs/smol-ret", max_steps=2000,
                      unfreeze="lit:threshold=0.01,patience=1")
    result = train(cfg, blocks)          # blocks: DatasetDict(train, validation) of input_ids
"""

from .config import AlignConfig, KDConfig, LoRAConfig, TrainConfig
from .loop import TrainResult, train
from .schedule import LITRule, UnfreezeSchedule, UnfreezeSpec, lr_factor, parse_unfreeze

__all__ = ["AlignConfig", "KDConfig", "LITRule", "LoRAConfig", "TrainConfig", "TrainResult", "UnfreezeSchedule",
           "UnfreezeSpec", "lr_factor", "parse_unfreeze", "train"]

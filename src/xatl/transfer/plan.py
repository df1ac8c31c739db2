"""Transfer plans: what a conversion would copy, initialise and leave, and the memory it needs, from the donor's
config alone (the donor and the student are built on the meta device; nothing is downloaded or allocated).

    from transformers import AutoConfig
    plan = plan_transfer(AutoConfig.from_pretrained("path/to/llama-3-70b"), mixer="retention")
    print(plan)                 # one line per side, and the planned memory
    plan.report                 # the TransferReport the conversion would write (every tensor's fate and shape)

``xatl convert --plan`` prints it for a donor directory holding only its ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import student_config
from .core import transfer
from .report import TransferReport

GIB = 1024**3


@dataclass
class TransferPlan:
    """The plan of one conversion. Byte counts are at ``dtype``; a tied tensor counts once."""

    report: TransferReport
    """Every donor and student tensor with its shape and fate, as the conversion would record it."""
    dtype: str
    donor_bytes: int
    """The donor's parameters."""
    student_bytes: int
    """The student's parameters (what ``save_pretrained`` writes)."""
    copied_bytes: int
    """Student parameters taken from the donor."""
    fresh_bytes: int
    """Student parameters initialised anew."""

    @property
    def peak_bytes(self) -> int:
        """Parameters held at once by ``xatl convert``: the donor, plus the student's fresh tensors (copied tensors
        are moved out of the donor, not cloned)."""
        return self.donor_bytes + self.fresh_bytes

    def memory(self) -> dict:
        return {"dtype": self.dtype, "donor_gib": self.donor_bytes / GIB, "student_gib": self.student_bytes / GIB,
                "copied_gib": self.copied_bytes / GIB, "fresh_gib": self.fresh_bytes / GIB,
                "convert_peak_gib": self.peak_bytes / GIB}

    def __str__(self) -> str:
        m = self.memory()
        return (f"{self.report.summary()}\nplanned memory ({self.dtype}): donor {m['donor_gib']:.2f} GiB, student "
                f"{m['student_gib']:.2f} GiB ({m['copied_gib']:.2f} copied + {m['fresh_gib']:.2f} fresh); "
                f"xatl convert holds {m['convert_peak_gib']:.2f} GiB at its peak")


def plan_transfer(donor_config, mixer: str = "retention", attention_layers=(), mixer_options: dict | None = None,
                  copy=None, dtype: torch.dtype = torch.bfloat16, config=None) -> TransferPlan:
    """Plan converting a donor of ``donor_config`` (any supported HF causal-LM config) into a ``mixer`` student
    (or into ``config``, an XATLConfig), copying ``copy`` (see :func:`xatl.transfer`)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        donor = AutoModelForCausalLM.from_config(donor_config, dtype=dtype)
    config = config if config is not None else student_config(donor_config, mixer=mixer,
                                                              attention_layers=attention_layers,
                                                              mixer_options=mixer_options)
    _, report = transfer(donor, config, copy=copy)
    size = torch.empty((), dtype=dtype).element_size()
    summary = report.summary()
    donor_numel = sum(p.numel() for p in donor.parameters())                  # tied tensors once
    return TransferPlan(report=report, dtype=str(dtype).replace("torch.", ""), donor_bytes=donor_numel * size,
                        student_bytes=summary["student_parameters"] * size,
                        copied_bytes=summary["copied_parameters"] * size,
                        fresh_bytes=summary["initialized_parameters"] * size)

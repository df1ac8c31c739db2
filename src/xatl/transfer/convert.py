"""``convert``: donor source -> saved student directory (what ``xatl convert`` runs).

Everything that can be checked cheaply (output directory, mixer, options, layer indices, copy set, donor family)
is checked before the donor's weights are read; the output appears only once it is complete.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..donors.load import load_donor, load_donor_config, load_tokenizer, resolve_source
from ..utils.fs import atomic_directory, check_not_input, check_output_dir
from .config import student_config
from .core import parse_copy, transfer
from .report import REPORT_FILE, TransferReport

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    path: Path
    report: TransferReport
    seconds: dict[str, float] = field(default_factory=dict)


def save_student(student, out: str | os.PathLike, report: TransferReport | None = None, tokenizer=None,
                 overwrite: bool = False) -> Path:
    """Save a student (weights, config, generation config, tokenizer, transfer report, remote code) atomically."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        student.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if report is not None:
            report.save(tmp / REPORT_FILE)
    return Path(out)


def convert(donor: str | os.PathLike, out: str | os.PathLike, mixer: str = "retention", attention_layers=(),
            copy=None, mixer_options: dict | None = None, overwrite: bool = False,
            seed: int | None = 0) -> ConvertResult:
    """Load ``donor``, transfer into a ``mixer`` student (hybrid with ``attention_layers``), save it to ``out``."""
    check_not_input(out, donor, "--donor")
    out = check_output_dir(out, overwrite)
    selected = parse_copy(copy)
    src = resolve_source(donor)
    t0 = time.perf_counter()
    dcfg = load_donor_config(src)
    config = student_config(dcfg, mixer=mixer, attention_layers=attention_layers, mixer_options=mixer_options)
    tokenizer = load_tokenizer(src)
    model = load_donor(src)
    t1 = time.perf_counter()
    student, report = transfer(model, config, selected, consume_donor=True, seed=seed)
    del model
    t2 = time.perf_counter()
    save_student(student, out, report, tokenizer, overwrite=overwrite)
    t3 = time.perf_counter()
    return ConvertResult(Path(out), report, {"load": t1 - t0, "transfer": t2 - t1, "save": t3 - t2})

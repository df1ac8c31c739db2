"""TransferReport: where every donor tensor went and where every student tensor came from, as data (JSON).

Training reads it to know which student parameters are "copied" (to freeze them by name, never by substring).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import TransferError
from ..utils.fs import atomic_write_json

REPORT_FILE = "transfer_report.json"


class TransferSummary(dict):
    """``TransferReport.summary()``: a plain (JSON-able) dict that prints as a short readable report."""

    def __str__(self) -> str:
        lines = [f"student parameters: {self['student_parameters']:,}; copied from the donor: "
                 f"{self['copied_parameters']:,} ({self['copied_fraction']:.1%}); newly initialised: "
                 f"{self['initialized_parameters']:,}"]
        for component, n in sorted(self["copied_parameters_by_component"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  copied {component:<8s} {n:>13,}")
        for side in ("donor", "student"):
            status = ", ".join(f"{k} {v}" for k, v in self[f"{side}_status"].items())
            lines.append(f"{side} tensors: {self[f'{side}_tensors']} ({status})")
        return "\n".join(lines)


@dataclass
class TransferReport:
    """donor_tensors[name] = {shape, dtype, layer, roles, component, status: copied|partly copied|unused|tied,
    to: [student names], reason}. student_tensors[name] = {shape, dtype, status: copied|initialized|tied,
    from, transform, component, init}."""

    donor: dict[str, Any]
    student: dict[str, Any]
    copy: list[str]
    donor_tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    student_tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    xatl_version: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    # ------------------------------------------------------------------ queries
    def copied_parameters(self) -> list[str]:
        """Names of student tensors copied from the donor (tied aliases excluded)."""
        return [n for n, r in self.student_tensors.items() if r["status"] == "copied"]

    def initialized_parameters(self) -> list[str]:
        return [n for n, r in self.student_tensors.items() if r["status"] == "initialized"]

    def summary(self) -> TransferSummary:
        def numel(shape):
            n = 1
            for s in shape:
                n *= s
            return n

        by_component: dict[str, int] = defaultdict(int)
        for r in self.student_tensors.values():
            if r["status"] == "copied":
                by_component[r["component"]] += numel(r["shape"])
        copied = sum(numel(r["shape"]) for r in self.student_tensors.values() if r["status"] == "copied")
        total = sum(numel(r["shape"]) for r in self.student_tensors.values() if r["status"] != "tied")
        return TransferSummary({
            "donor_tensors": len(self.donor_tensors),
            "donor_status": dict(Counter(r["status"] for r in self.donor_tensors.values())),
            "student_tensors": len(self.student_tensors),
            "student_status": dict(Counter(r["status"] for r in self.student_tensors.values())),
            "student_parameters": total,
            "copied_parameters": copied,
            "copied_fraction": copied / total if total else 0.0,
            "initialized_parameters": sum(numel(r["shape"]) for r in self.student_tensors.values()
                                          if r["status"] == "initialized"),
            "copied_parameters_by_component": dict(by_component),
        })

    def check_complete(self, donor_names, student_names) -> None:
        """Every donor and student tensor has a record with a known status, and copies point both ways."""
        missing_d = set(donor_names) - set(self.donor_tensors)
        missing_s = set(student_names) - set(self.student_tensors)
        if missing_d or missing_s:
            raise TransferError(f"transfer report incomplete: donor {sorted(missing_d)[:5]}, "
                                f"student {sorted(missing_s)[:5]} unaccounted for")
        for name, r in self.student_tensors.items():
            if r["status"] == "copied" and name not in self.donor_tensors[r["from"]]["to"]:
                raise TransferError(f"report inconsistent: {name} copied from {r['from']} but not listed there")

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict[str, Any]:
        return {"xatl_version": self.xatl_version, "created": self.created, "donor": self.donor,
                "student": self.student, "copy": self.copy, "summary": self.summary(),
                "donor_tensors": self.donor_tensors, "student_tensors": self.student_tensors}

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON (atomically). ``path`` may be a model directory or a file path."""
        p = Path(path)
        if p.is_dir():
            p = p / REPORT_FILE
        atomic_write_json(p, self.to_dict())
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransferReport:
        p = Path(path)
        if p.is_dir():
            p = p / REPORT_FILE
        if not p.is_file():
            raise TransferError(f"no transfer report at {str(p)!r}; convert the donor with `xatl convert` first")
        d = json.loads(p.read_text())
        d.pop("summary", None)
        return cls(**d)

"""The machine and software a study ran on (for the report)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

PACKAGES = ("xatl", "torch", "transformers", "datasets", "tokenizers", "accelerate", "safetensors", "matplotlib",
            "lm_eval", "peft")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


def machine() -> dict:
    """CPU model, cores, threads torch uses, memory, accelerator, OS."""
    import torch

    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(memory_gib(), 1) if memory_gib() else None,
            "os": f"{platform.system()} {platform.release()}", "accelerator": None}
    if torch.cuda.is_available():
        info["accelerator"] = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return info


def describe_machine(info: dict) -> str:
    parts = [f"{info['cpu']}, {info['cores']} cores (torch uses {info['torch_threads']} threads)"]
    if info.get("memory_gib"):
        parts.append(f"{info['memory_gib']} GiB RAM")
    parts.append(f"accelerator: {info['accelerator'] or 'none (CPU only)'}")
    parts.append(info["os"])
    return "; ".join(parts)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

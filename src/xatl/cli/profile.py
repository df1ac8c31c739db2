"""``xatl profile``: decode latency, prefill throughput and cache memory against context length."""

from __future__ import annotations

import argparse

from .types import PACK_HELP

HELP = "measure the cost of inference (decode latency, prefill, cache memory) as the context grows"
DESCRIPTION = """Measure, at each context length, the prefill throughput, the per-token decode latency with the
cache, and the memory of that cache: the recurrent state of a student, the KV cache of a Transformer donor.
Writes profile.json and PNG plots (decode_latency.png, cache_memory.png, prefill_throughput.png) into --out and
prints a table. Random tokens are used: the cost does not depend on the text."""
EPILOG = """examples:
  xatl profile --model students/smol-ret --donor smollm2-135m --out profiles/smol-ret
  xatl profile --model students/smol-ret --contexts 512,4096,16384 --steps 32 --out profiles/quick"""


def _contexts(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive lengths like 256,1024; got {text!r}")
    return sorted(set(values))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The models and outputs, then every ``ProfileConfig`` field as a flag (help, default and range from it)."""
    from ..eval.profile_config import ProfileConfig
    from .flags import add_flags

    p.add_argument("--model", required=True, help="model directory (student or donor), .gguf file or asset name")
    p.add_argument("--donor", help="also profile this donor (e.g. the student's donor) for comparison")
    add_flags(p, ProfileConfig, overrides={"contexts": dict(type=_contexts, metavar="L1,L2,...",
                                                             show=lambda c: ",".join(map(str, c)))})
    p.add_argument("--device", default="auto", help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--pack", action="store_true", help=PACK_HELP)
    p.add_argument("--out", default="profile", help="output directory for profile.json and plots (default ./profile)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


GENERIC = ("final", "student", "train", "init", "model", "heal", "checkpoints")


def _name(path: str) -> str:
    """A label for ``path``: its last component, with the parents before it while those are generic (``final``,
    ``train``, ``step-41``...): runs/heal-lolcats/train/final -> heal-lolcats/train/final."""
    import re
    from pathlib import Path

    parts = Path(str(path).rstrip("/")).parts
    keep = 1
    while keep < len(parts) and (parts[-keep] in GENERIC or re.fullmatch(r"step-\d+", parts[-keep])):
        keep += 1
    return "/".join(parts[-keep:]) or str(path)


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..eval.loading import load_model
    from ..eval.profile import ProfileConfig, format_profile_table, plot_profiles, profile_model
    from ..utils.fs import atomic_directory, atomic_write_json, check_output_dir
    from .flags import flag_values

    check_output_dir(args.out, args.overwrite, owned=("profile.json",), what="a profile")
    cfg = ProfileConfig(**flag_values(args, ProfileConfig))
    dtype = getattr(torch, args.dtype)
    profiles = []
    for role, path in (("model", args.model), ("donor", args.donor)):
        if path is None:
            continue
        model, _ = load_model(path, device=args.device, dtype=dtype, pack=args.pack)
        name = _name(path) + (" (donor)" if role == "donor" else "")
        profiles.append(dict(profile_model(model, cfg, name=name, progress=not args.no_progress), path=str(path),
                             role=role))
        del model
    table = format_profile_table(profiles)
    print(table)
    with atomic_directory(args.out, overwrite=True) as tmp:
        atomic_write_json(tmp / "profile.json", {"settings": vars(cfg), "profiles": profiles})
        (tmp / "profile.txt").write_text(table + "\n")
        plot_profiles(profiles, tmp)
    print(f"wrote {args.out}/profile.json and plots (decode_latency.png, cache_memory.png, prefill_throughput.png)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Inference only: gradients are off for the command, and back on after it (the CLI may run in-process)."""
    import torch

    with torch.no_grad():
        return _run(args)

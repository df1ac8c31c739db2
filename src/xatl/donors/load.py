"""Load a donor from a local HF directory, a hub id (when a hub is reachable), a GGUF file, or a fetched asset.

Config first (cheap), so an unsupported family is refused before any weights are read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DonorLoadError
from ..utils.fs import publishing_problem
from ..utils.model_checks import (
    checkpoint_dtypes,
    dtype_problem,
    invalid_config,
    layer_count_problem,
    loading_problem,
    nonfinite_problem,
    size_problem,
)
from ..utils.remote_code import refusal, remote_code_allowed, reraise_refusal
from .registry import get_adapter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DonorSource:
    """Where a donor lives. kind: "dir" | "gguf" | "hub"; path: directory or hub id; gguf_file: name in path;
    trust_remote_code: run Python code the model directory names in ``auto_map`` (default: the process-wide
    policy, :func:`xatl.utils.remote_code.remote_code_allowed`, which is off unless the user asked)."""

    kind: str
    path: str
    gguf_file: str | None = None
    trust_remote_code: bool = field(default_factory=remote_code_allowed)

    @property
    def kwargs(self) -> dict:
        """Keyword arguments for every ``from_pretrained`` of this source. ``trust_remote_code`` is always passed
        explicitly: left out, transformers asks "[y/N]" on stdin, and piped input would answer it."""
        out = {"trust_remote_code": self.trust_remote_code}
        if self.gguf_file:
            out["gguf_file"] = self.gguf_file
        return out

    def __str__(self) -> str:
        return os.path.join(self.path, self.gguf_file) if self.gguf_file else self.path


def resolve_source(source: str | os.PathLike) -> DonorSource:
    """Classify ``source``: a directory with config.json, a .gguf file (or a directory holding exactly one),
    the name of a fetched asset (``xatl fetch --list``), or else a hub id."""
    p = Path(source).expanduser()
    problem = publishing_problem(p) if str(source).startswith((".", "/", "~")) or p.exists() else None
    if problem:
        raise DonorLoadError(problem)
    if p.is_file():
        if p.suffix.lower() == ".gguf":
            return DonorSource("gguf", str(p.parent), p.name)
        raise DonorLoadError(f"donor {str(source)!r} is a file but not a .gguf; pass a model directory, a .gguf "
                             "file or a hub id")
    if p.is_dir():
        if (p / "config.json").is_file():
            return DonorSource("dir", str(p))
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return DonorSource("gguf", str(p), ggufs[0].name)
        raise DonorLoadError(f"donor directory {str(p)!r} holds no config.json"
                             + (" and several .gguf files; pass one of them" if ggufs else
                                "; pass a Hugging Face model directory, a .gguf file or a hub id"))
    asset_dir = _fetched_asset_dir(str(source))
    if asset_dir is not None:
        return DonorSource("dir", str(asset_dir))
    if str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:   # a path, not an "org/name" id
        raise DonorLoadError(f"donor path {str(source)!r} does not exist")
    return DonorSource("hub", str(source))


def _fetched_asset_dir(name: str) -> Path | None:
    """The directory of a donor fetched with ``xatl fetch NAME``, if ``name`` is such an asset (else None)."""
    try:
        from ..assets import donor_asset_path
    except ImportError:
        return None
    return donor_asset_path(name)


def _wrap(source: DonorSource, what: str, err: Exception) -> DonorLoadError:
    refused = refusal(str(source), err) or invalid_config(err, str(source))
    if refused:
        return DonorLoadError(refused)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if source.kind == "hub":
        return DonorLoadError(f"could not load the {what} of {source.path!r} from the Hugging Face hub ({first}); "
                              "the hub may be unreachable here: pass a local model directory or .gguf file")
    return DonorLoadError(f"could not read the donor {what} at {str(source)!r} ({type(err).__name__}: {first}); "
                          "the file may be truncated or corrupt: re-download or re-save the donor")


def load_donor_config(source: str | os.PathLike | DonorSource):
    """The donor's HF config; raises UnsupportedDonorError for an unsupported family."""
    from transformers import AutoConfig

    from .. import models  # noqa: F401  (a student can be a donor: registers it with the Auto classes)

    src = source if isinstance(source, DonorSource) else resolve_source(source)
    try:
        config = AutoConfig.from_pretrained(src.path, **src.kwargs)
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for unreadable configs
        raise _wrap(src, "config", e) from e
    get_adapter(config.model_type)
    problem = size_problem(config, str(src))
    if problem:
        raise DonorLoadError(problem)
    return config


def load_donor(source: str | os.PathLike | DonorSource, dtype: torch.dtype = torch.float32):
    """Load the donor causal LM (GGUF weights are dequantised to ``dtype``). Refuses unsupported families early."""

    src = source if isinstance(source, DonorSource) else resolve_source(source)
    config = load_donor_config(src)
    try:
        model = load_checked(src, config, dtype, DonorLoadError)
    except DonorLoadError:
        raise
    except Exception as e:
        raise _wrap(src, "weights", e) from e
    model.eval()
    return model


def load_checked(src: DonorSource, config, dtype: torch.dtype, error_type: type[Exception], **kwargs):
    """``from_pretrained`` of ``src`` (with ``config``, already read), strictly: ``error_type`` (one line) for a
    config whose layer count differs from its checkpoint's (before anything is allocated), for tensors the
    checkpoint lacks, holds in excess or in another shape, and for NaN/inf weights. GGUF weights come dequantised
    and behave like any floating-point model. Other failures propagate for the caller to word."""
    from transformers import AutoModelForCausalLM

    where = str(src)
    stored = checkpoint_dtypes(src.path) if src.kind == "dir" else None       # the headers, read once
    problem = layer_count_problem(config, stored, where)
    if problem:
        raise error_type(problem)
    model, info = AutoModelForCausalLM.from_pretrained(src.path, dtype=dtype, output_loading_info=True,
                                                       **{"config": config, **src.kwargs, **kwargs})
    problem = loading_problem(info, where) or dtype_problem(model, stored, where) or nonfinite_problem(model, where)
    if problem:
        raise error_type(problem)
    if src.kind == "gguf":
        _drop_gguf_quantizer(model)
    return model


def _drop_gguf_quantizer(model) -> None:
    """GGUF weights arrive dequantised; forget the quantizer so the model behaves (and saves) like any other."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_tokenizer(source: str | os.PathLike | DonorSource):
    """The donor's tokenizer, or None (with a warning) when it has none."""
    from transformers import AutoTokenizer

    src = source if isinstance(source, DonorSource) else resolve_source(source)
    try:
        return AutoTokenizer.from_pretrained(src.path, **src.kwargs)
    except Exception as e:
        reraise_refusal(str(src), e, DonorLoadError)
        log.warning("donor %s has no loadable tokenizer (%s); the student is saved without one", src,
                    str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None

"""Load any Hugging Face causal LM (a donor or an XATL student) with its tokenizer, and fingerprint its weights."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..errors import ConfigError, DonorLoadError, ModelLoadError
from ..utils.fs import publishing_problem, sha256_file
from ..utils.model_checks import invalid_config, size_problem
from ..utils.remote_code import reraise_refusal

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        built = f"torch {torch.__version__} is built {'with CUDA ' + torch.version.cuda if torch.version.cuda else 'without CUDA'}"
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA GPU is visible here ({built}); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here "
                              f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return dev


def _is_causal_lm(config) -> bool:
    """A config transformers can build a causal LM from, *and* whose saved ``architectures`` (when listed) name a
    causal LM: a BERT checkpoint (``BertForMaskedLM``) has a causal-LM class in transformers but is not one."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        return False
    archs = getattr(config, "architectures", None) or []
    names = set()
    for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update(v if isinstance(v, (list, tuple)) else [v])
    return not archs or any(a in names or a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def resolve_model(path: str | os.PathLike):
    """Where a model lives (a ``DonorSource``); refuses a missing path or a hub id, without loading anything."""
    from ..donors.load import resolve_source

    p = Path(path).expanduser()
    problem = publishing_problem(p)
    if problem:
        raise ModelLoadError(problem)
    if not p.exists() and (str(path).startswith((".", "/", "~")) or str(path).count("/") > 1):
        raise ModelLoadError(f"model path {str(path)!r} does not exist; pass a model directory (config.json and "
                             "weights), a .gguf file or the name of a fetched asset")
    try:
        src = resolve_source(path)
    except DonorLoadError as e:
        raise ModelLoadError(str(e).replace("donor", "model")) from None
    if src.kind == "hub":
        raise ModelLoadError(f"model {str(path)!r} is not a local model directory, .gguf file or fetched asset; "
                             "pass a directory holding config.json (e.g. a student saved by `xatl convert`)")
    return src


def resolve_causal_lm(path: str | os.PathLike):
    """(``DonorSource``, config) of the causal LM at ``path``, reading only its config: refuses, with one line
    naming the fix, a path that is not a model and a model that is not a causal LM."""
    src = resolve_model(path)
    return src, config_of(src)


def config_of(src):
    """The config of the resolved model source ``src``, refused in one line when it cannot be read, holds absurd
    sizes, or is not a causal LM's."""
    from transformers import AutoConfig

    import xatl.models  # noqa: F401  (registers the XATL student with the Auto classes)

    try:
        config = AutoConfig.from_pretrained(src.path, **src.kwargs)
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for unreadable configs
        reraise_refusal(str(src), e, ModelLoadError)
        problem = invalid_config(e, str(src))
        if problem:
            raise ModelLoadError(problem) from None
        raise ModelLoadError(f"could not read the model config at {str(src)!r} ({type(e).__name__}); pass a model "
                             "directory saved with save_pretrained") from None
    problem = size_problem(config, str(src))
    if problem:
        raise ModelLoadError(problem)
    if not _is_causal_lm(config):
        archs = ", ".join(getattr(config, "architectures", None) or [])
        raise ModelLoadError(f"{str(src)!r} holds a {config.model_type!r} model{f' ({archs})' if archs else ''}, which "
                             "is not a causal language model; pass a causal LM directory (a donor or a student from "
                             "`xatl convert`)")
    return config


def with_mixer_options(src, options: dict):
    """The config of the xatl student at ``src`` with ``options`` merged into its mixer options (validated). Refuses
    in one line a model that is not an xatl student."""
    from ..mixers.registry import validate_mixer_options

    config = config_of(src) if hasattr(src, "kwargs") else resolve_causal_lm(src)[1]
    if config.model_type != "xatl":
        raise ModelLoadError(f"--mixer-option sets options of an xatl student's mixers; {str(src)!r} is a "
                             f"{config.model_type!r} model: drop the option or pass a student directory")
    merged = {**config.mixer_options, **options}
    validate_mixer_options(config.mixer, merged)
    before = _parameter_names(config)
    config.mixer_options = merged
    new = sorted(_parameter_names(config) - before)
    if new:
        raise ModelLoadError(f"mixer options {options} need weights {str(src)!r} does not have ({new[0]}, ...): heal "
                             "a student with them instead")
    return config


def _parameter_names(config) -> set[str]:
    """The parameter names of an xatl student of ``config`` (built on the meta device: no memory, no init)."""
    from ..models import XATLForCausalLM

    with torch.device("meta"):
        return {n for n, _ in XATLForCausalLM(config).named_parameters()}


def load_weights(src, dtype: torch.dtype = torch.float32, mixer_options: dict | None = None, config=None):
    """The causal LM of a resolved source (:func:`resolve_causal_lm`) in ``dtype``, on the CPU; GGUF weights come
    dequantised and behave like any floating-point model. ``config``: the one :func:`resolve_causal_lm` returned
    (read again when not given). ``mixer_options`` override a student's mixer options (:func:`with_mixer_options`);
    one that would need weights the student does not have is refused."""
    from ..donors.load import load_checked

    if mixer_options:
        config = with_mixer_options(src, mixer_options)
    elif config is None:
        config = config_of(src)
    try:
        return load_checked(src, config, dtype, ModelLoadError)
    except ModelLoadError:
        raise
    except Exception as e:
        reraise_refusal(str(src), e, ModelLoadError)
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise ModelLoadError(f"could not load the weights of {str(src)!r} ({type(e).__name__}: {first}); the files "
                             "may be truncated: re-save or re-convert the model") from None


def load_model(path: str | os.PathLike, *, device: str | None = "cpu", dtype: torch.dtype = torch.float32,
               pack: bool = False, mixer_options: dict | None = None):
    """(model in eval mode, tokenizer) of a model directory, a .gguf file or a fetched asset name; ``pack``: its
    linear layers packed for CPU inference (`xatl.inference.pack_for_cpu`); ``mixer_options``: a student's mixer
    options overridden for this load (e.g. ``{"sparse_cache": 64}``).

    Refuses, with one line naming the fix, a path that is not a model, a model that is not a causal LM, and a
    model without a tokenizer.
    """
    from transformers import AutoTokenizer

    target = pick_device(device)             # a device that is not there is refused before any loading
    src, config = resolve_causal_lm(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.path, **src.kwargs)
    except Exception as e:
        reraise_refusal(str(src), e, ModelLoadError)
        raise ModelLoadError(f"model {str(src)!r} has no loadable tokenizer ({type(e).__name__}); save the donor's "
                             "tokenizer beside the weights") from None
    model = load_weights(src, dtype, mixer_options, config).to(target).eval()
    if pack:
        from ..inference.quantize import pack_for_cpu

        pack_for_cpu(model)
    return model, tokenizer


def weights_sha256(path: str | os.PathLike) -> str | None:
    """sha256 over the model's weight files (names and contents, sorted by name); None if there are none."""
    p = Path(path).expanduser()
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES) \
        if p.is_dir() else []
    if not files:
        return None
    outer = hashlib.sha256()
    for f in files:
        outer.update(f"{f.name}\0{sha256_file(f)}\n".encode())
    return outer.hexdigest()


def state_dict_sha256(model) -> str:
    """sha256 over the model's tensors (names, dtypes, shapes and values), for models that live only in memory."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_info(model, path: str | os.PathLike | None = None) -> dict:
    """What identifies the evaluated model: path, weight hash, type, size, dtype."""
    digest = weights_sha256(path) if path is not None else None
    return {
        "path": os.fspath(path) if path is not None else getattr(model, "name_or_path", None) or None,
        "sha256": digest if digest is not None else state_dict_sha256(model),
        "sha256_of": "weight files" if digest is not None else "state dict",
        "model_type": getattr(model.config, "model_type", None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        **({"mixer_options": dict(model.config.mixer_options)} if hasattr(model.config, "mixer_options") else {}),
    }

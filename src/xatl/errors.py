"""Typed exceptions. The library raises these; the CLI turns them into one clear line and a non-zero exit.

Every message names the problem and, where there is one, the fix.
"""

from __future__ import annotations


class XATLError(Exception):
    """Base class of every error xatl raises on purpose (bad input, missing asset, refused operation)."""


class ConfigError(XATLError, ValueError):
    """A configuration value is invalid (unknown mixer, bad layer index, unknown option...)."""


class UnsupportedDonorError(XATLError, ValueError):
    """The donor's architecture (``config.model_type``) or one of its features is not supported."""


class DonorLoadError(XATLError, OSError):
    """The donor could not be read (missing path, corrupt weights, unreachable hub)."""


class TransferError(XATLError, RuntimeError):
    """Weight transfer could not be carried out as asked (shape mismatch, incomplete adapter table...)."""


class OutputExistsError(XATLError, FileExistsError):
    """The output location already holds something that would be overwritten."""


class AssetError(XATLError, OSError):
    """A fetchable asset is unknown, missing, corrupt, or its registry/client is unreachable."""


class DataError(XATLError, ValueError):
    """Training/evaluation data is missing, empty, or does not fit the request."""


class TrainingError(XATLError, RuntimeError):
    """A training run cannot start or had to stop (NaN loss, incompatible checkpoint...)."""


class ModelLoadError(XATLError, OSError):
    """A model to evaluate/profile could not be loaded as a causal LM (no config, not a causal LM, no tokenizer)."""


class GenerationError(XATLError, ValueError):
    """A generation request cannot be served (empty prompt, prompt beyond a softmax layer's context, a decoding
    mode the recurrent cache cannot support, a foreign cache object)."""


def choices_message(kind: str, name: object, valid) -> str:
    """``unknown mixer 'foo'; choose one of: a, b, c`` -- the standard wording of a registry refusal."""
    valid = sorted(valid)
    return f"unknown {kind} {name!r}; choose one of: {', '.join(map(str, valid))}"

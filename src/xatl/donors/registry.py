"""Supported donor families, keyed by the donor's ``config.model_type``."""

from __future__ import annotations

from ..errors import UnsupportedDonorError
from .gemma3 import GEMMA3, GEMMA3_TEXT
from .gpt2 import GPT2
from .gpt_neox import GPT_NEOX
from .llama import LLAMA, MISTRAL, QWEN2, QWEN3
from .olmo2 import OLMO2
from .phi3 import PHI3
from .spec import DonorAdapter

ADAPTERS: dict[str, DonorAdapter] = {t: a for a in (LLAMA, MISTRAL, QWEN2, QWEN3, PHI3, OLMO2, GEMMA3_TEXT, GEMMA3,
                                                    GPT_NEOX, GPT2) for t in a.model_types}
SUPPORTED_MODEL_TYPES = tuple(sorted(ADAPTERS))


def get_adapter(model_type: str) -> DonorAdapter:
    """The adapter of a donor family; an unsupported ``model_type`` is refused with the supported list."""
    if model_type not in ADAPTERS:
        raise UnsupportedDonorError(
            f"unsupported donor family {model_type!r}; supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return ADAPTERS[model_type]

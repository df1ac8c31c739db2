"""The data pipeline on Hugging Face ``datasets``: documents from fetched corpora, local files or a hub; a
deterministic document-level train/validation split; tokenization and packing into fixed-length blocks (cached on
disk); byte-level BPE training for from-scratch donors.

    from xatl.data import DataConfig, build_lm_dataset, validation_documents
    cfg = DataConfig(sources=["default"], block_size=512)      # wiki + sotu + pydoc
    blocks = build_lm_dataset(cfg, tokenizer, max_length=model.config.max_position_embeddings)
    held_out = validation_documents(cfg)                        # whole documents, never trained on

The names import on first use, so the settings (``xatl train --help``) load without ``datasets``.
"""

from ..utils.lazy import lazy_exports

_EXPORTS = {"DataConfig": "config", "PIPELINE_VERSION": "pack", "iter_blocks": "pack",
            "tokenizer_fingerprint": "pack", "as_config": "pipeline", "build_lm_dataset": "pipeline",
            "cache_path": "pipeline", "load_documents": "pipeline", "validation_documents": "pipeline",
            "expand_sources": "sources", "read_sources": "sources", "split_hash": "split",
            "train_tokenizer": "tokenizer"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

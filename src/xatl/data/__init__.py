"""The data pipeline on Hugging Face ``datasets``: documents from fetched corpora, local files or a hub; a
deterministic document-level train/validation split; tokenization and packing into fixed-length blocks (cached on
disk); byte-level BPE training for from-scratch donors.

    from xatl.data import DataConfig, build_lm_dataset, validation_documents
    cfg = DataConfig(sources=["default"], block_size=512)      # wiki + sotu + pydoc
    blocks = build_lm_dataset(cfg, tokenizer, max_length=model.config.max_position_embeddings)
    held_out = validation_documents(cfg)                        # whole documents, never trained on
"""

from .config import DataConfig
from .pack import PIPELINE_VERSION, iter_blocks, tokenizer_fingerprint
from .pipeline import as_config, build_lm_dataset, cache_path, load_documents, validation_documents
from .sources import expand_sources, read_sources
from .split import split_hash
from .tokenizer import train_tokenizer

__all__ = ["PIPELINE_VERSION", "DataConfig", "as_config", "build_lm_dataset", "cache_path", "expand_sources",
           "iter_blocks", "load_documents", "read_sources", "split_hash", "tokenizer_fingerprint",
           "train_tokenizer", "validation_documents"]

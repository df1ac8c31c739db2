"""Donor adapters (weight-map tables per HF ``model_type``) and donor loading."""

from .load import load_donor, load_donor_config, load_tokenizer
from .registry import ADAPTERS, SUPPORTED_MODEL_TYPES, get_adapter
from .spec import COMPONENTS, DEFAULT_COPY, DonorAdapter, Piece, Transform

__all__ = ["ADAPTERS", "COMPONENTS", "DEFAULT_COPY", "SUPPORTED_MODEL_TYPES", "DonorAdapter", "Piece", "Transform",
           "get_adapter", "load_donor", "load_donor_config", "load_tokenizer"]

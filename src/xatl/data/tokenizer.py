"""Byte-level BPE tokenizers for small from-scratch donors (Hugging Face ``tokenizers``), saved in HF format.

Byte-level means every string can be encoded (no unknown token) and decoding gives the text back exactly.
The first special token is the document separator and serves as EOS, BOS and padding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import DataError
from ..utils.fs import atomic_directory

log = logging.getLogger(__name__)

DEFAULT_SPECIAL_TOKENS = ("<|endoftext|>",)


def train_tokenizer(documents: Iterable[str], vocab_size: int, out_dir: str | os.PathLike, *,
                    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS, min_frequency: int = 2,
                    model_max_length: int | None = None, overwrite: bool = False, progress: bool = False):
    """Train a byte-level BPE of ``vocab_size`` tokens (specials and the 256 byte symbols included) on
    ``documents`` and save it to ``out_dir`` (atomically) as a ``PreTrainedTokenizerFast``, which is returned.

    ``special_tokens[0]`` becomes EOS, BOS and PAD. ``model_max_length``: the context the model will have.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special_tokens = list(special_tokens)
    if not special_tokens:
        raise DataError("train_tokenizer needs at least one special token (the document separator / EOS)")
    minimum = 256 + len(special_tokens)
    if vocab_size < minimum:
        raise DataError(f"vocab_size {vocab_size} is too small for a byte-level BPE; choose at least {minimum}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=progress)
    seen = 0

    def counted():
        nonlocal seen
        for text in documents:
            if not isinstance(text, str):
                raise DataError(f"train_tokenizer expects strings, got {type(text).__name__}")
            seen += 1
            yield text

    tok.train_from_iterator(counted(), trainer=trainer)
    if seen == 0:
        raise DataError("train_tokenizer got no documents; pass a non-empty iterable of strings")
    eos = special_tokens[0]
    kwargs = {"model_max_length": model_max_length} if model_max_length else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=eos, pad_token=eos,
                                   unk_token=None, additional_special_tokens=special_tokens[1:] or None, **kwargs)
    with atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
        fast.save_pretrained(tmp)
    log.info("trained a byte-level BPE of %d tokens on %d documents into %s", tok.get_vocab_size(), seen, out_dir)
    return PreTrainedTokenizerFast.from_pretrained(str(out_dir))

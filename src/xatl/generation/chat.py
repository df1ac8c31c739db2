"""A multi-turn conversation that keeps the decoding cache between turns.

Each turn renders the whole conversation (the tokenizer's chat template when it has one, else a plain
"User:/Assistant:" transcript), finds the text the model has already consumed at its start, and feeds only the rest:
the cache carries everything before it, so earlier turns are never run again (for a student, memory stays constant
however long the chat). When the rendering does not extend what was consumed (a template that rewrites history),
the turn starts over from a fresh cache.
"""

from __future__ import annotations

from typing import TextIO

import torch

from ..errors import GenerationError
from .settings import DecodingSettings
from .streaming import StreamPrinter, cut_at_stop
from .text import cache_nbytes, check_fits, new_cache

PLAIN_USER = "User:"
PLAIN_ASSISTANT = "Assistant:"


def render_plain(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The plain transcript: an optional system text, then "User: ...\\nAssistant: ...\\n" lines."""
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(m["content"] + "\n\n")
        elif m["role"] == "user":
            parts.append(f"{PLAIN_USER} {m['content']}\n")
        else:
            parts.append(f"{PLAIN_ASSISTANT}{m['content']}\n")
    if add_generation_prompt:
        parts.append(PLAIN_ASSISTANT)
    return "".join(parts)


class ChatSession:
    """A conversation with ``model``. ``reply(text)`` returns (and streams) the assistant's answer."""

    def __init__(self, model, tokenizer, settings: DecodingSettings | None = None, system: str | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.settings = settings or DecodingSettings()
        self.settings.validate()
        self.uses_template = bool(getattr(tokenizer, "chat_template", None))
        self.stop = list(self.settings.stop) + ([] if self.uses_template else ["\n" + PLAIN_USER])
        self.system = system
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (and the cache)."""
        self.messages: list[dict] = [{"role": "system", "content": self.system}] if self.system else []
        self.cache = new_cache(self.model)
        self.ids: torch.Tensor | None = None         # (1, L): tokens so far; the last one is not yet in the cache
        self.recomputed_turns = 0

    def render(self) -> str:
        if self.uses_template:
            return self.tokenizer.apply_chat_template(self.messages, tokenize=False, add_generation_prompt=True)
        return render_plain(self.messages)

    def _decode(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _input_ids(self, text: str, device) -> torch.Tensor:
        """All tokens of the conversation: those already seen, then the encoding of the unseen rest of ``text``."""
        if self.ids is not None:
            # the last generated token was never fed to the model: it may be dropped if the rendering lacks it
            for ids in (self.ids, self.ids[:, :-1]):
                seen = self._decode(ids[0])
                if text.startswith(seen):
                    rest = self.tokenizer(text[len(seen):], add_special_tokens=False, return_tensors="pt").input_ids
                    return torch.cat([ids, rest.to(device)], dim=1)
            self.cache = new_cache(self.model)       # the history changed: start over
            self.recomputed_turns += 1
        special = not self.uses_template             # templates carry their own BOS
        return self.tokenizer(text, add_special_tokens=special, return_tensors="pt").input_ids.to(device)

    def reply(self, user_text: str, out: TextIO | None = None) -> str:
        """Add the user's message, generate the answer (streamed to ``out``), add it to the history, return it."""
        self.messages.append({"role": "user", "content": user_text})
        device = next(self.model.parameters()).device
        ids = self._input_ids(self.render(), device)
        try:
            check_fits(self.model, ids.shape[1], self.settings.max_new_tokens)
        except GenerationError as e:
            self.messages.pop()
            raise GenerationError(f"{e} (the conversation so far counts; /reset starts over)") from None
        s = self.settings
        if s.seed is not None:
            torch.manual_seed(s.seed)
        streamer = StreamPrinter(self.tokenizer, out=out, stop=self.stop) if out is not None else None
        kwargs = DecodingSettings(**{**vars(s), "stop": self.stop, "num_beams": 1}).generate_kwargs(self.tokenizer)
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.eos_token_id
        out_ids = self.model.generate(ids, attention_mask=torch.ones_like(ids), cache=self.cache, streamer=streamer,
                                      **kwargs)
        answer, _ = cut_at_stop(self.tokenizer.decode(out_ids[0, ids.shape[1]:], skip_special_tokens=True), self.stop)
        self.ids = out_ids
        self.messages.append({"role": "assistant", "content": answer})
        return answer

    @property
    def cache_bytes(self) -> int | None:
        return cache_nbytes(self.cache)

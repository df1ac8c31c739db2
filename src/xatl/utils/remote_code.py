"""Whether Python code shipped inside a model directory may run.

A model directory can name its own Python classes (``auto_map`` in config.json or tokenizer_config.json); loading it
with ``trust_remote_code=True`` imports and runs that code. xatl never does so unless the user asked
(``xatl --trust-remote-code ...`` or :func:`allow_remote_code`), and always passes ``trust_remote_code`` explicitly:
left out, transformers asks "[y/N]" on stdin, which piped input (``echo y | xatl generate``) or a chat's first line
would answer.

A directory whose model needs its own code is then refused in one line (:func:`refusal`). Students saved by xatl
load without it: ``import xatl`` registers their classes with transformers, so their bundled copy never runs.
"""

from __future__ import annotations

_ALLOWED = False


def remote_code_allowed() -> bool:
    """The process-wide policy (False unless :func:`allow_remote_code` turned it on)."""
    return _ALLOWED


def allow_remote_code(allowed: bool) -> None:
    """Set the process-wide policy (the CLI's ``--trust-remote-code``)."""
    global _ALLOWED
    _ALLOWED = bool(allowed)


def refusal(where: str, err: BaseException) -> str | None:
    """The one-line refusal when ``err`` is transformers declining to run a directory's own code, else None."""
    text = str(err)
    if "trust_remote_code" not in text and "custom code" not in text:
        return None
    return (f"{where!r} contains custom code (auto_map in its config or tokenizer_config) that xatl does not run; "
            "if you trust its author and have read the code, pass --trust-remote-code")


def reraise_refusal(where: str, err: BaseException, error_type: type[Exception]) -> None:
    """Raise ``error_type(refusal)`` from nothing when ``err`` is a refused-code error; else return."""
    message = refusal(where, err)
    if message:
        raise error_type(message) from None

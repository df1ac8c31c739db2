"""xatl: Cross-Architecture Transfer Learning -- turn a pretrained Transformer into a linear-cost-inference model.

    import xatl
    donor = xatl.load_donor("path/or/hub-id/or/file.gguf")
    cfg = xatl.student_config(donor.config, mixer="retention", attention_layers=[1, 11])
    student, report = xatl.transfer(donor, cfg)

``import xatl`` registers the student with transformers' Auto classes (``AutoModelForCausalLM.from_pretrained``
then loads any student directory), as Hugging Face model packages do. The command line starts without torch
(``xatl --help`` in 0.1 s): its launcher, ``xatl_cli``, sets its ``LAZY_IMPORT`` mark before the package loads, which
skips the eager imports and leaves the public names to resolve on first use; every xatl code path that loads a
student imports :mod:`xatl.models` (the registration) itself. The mark lives in the launcher's module, not in the
environment, so nothing a user sets changes what a plain ``import xatl`` registers.
"""

from __future__ import annotations

import sys as _sys

from .utils.lazy import lazy_exports as _lazy_exports
from .utils.threads import prepare_openmp as _prepare_openmp

__version__ = "0.1.0"

if "torch" not in _sys.modules:       # idle OpenMP workers sleep, not spin (docs/benchmarks.md: busy-machine figures)
    _prepare_openmp()

# public name -> the submodule that defines it (resolved on first use)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["XATLCache", "XATLConfig", "XATLForCausalLM", "XATLModel"], "models"),
    **dict.fromkeys(["COMPONENTS", "DEFAULT_COPY", "SUPPORTED_MODEL_TYPES", "load_donor", "load_tokenizer"], "donors"),
    "MIXERS": "mixers",
    **dict.fromkeys(["TransferReport", "convert", "save_student", "student_config", "transfer"], "transfer"),
}
__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

if not getattr(_sys.modules.get("xatl_cli"), "LAZY_IMPORT", False):
    # eager, as before: registers the student with the Auto classes (xatl.models comes first), and binds
    # ``xatl.transfer`` to the function, not the subpackage of the same name
    for _name in _EXPORTS:
        __getattr__(_name)

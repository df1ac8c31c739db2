"""xatl: Cross-Architecture Transfer Learning -- turn a pretrained Transformer into a linear-cost-inference model.

    import xatl
    donor = xatl.load_donor("path/or/hub-id/or/file.gguf")
    cfg = xatl.student_config(donor.config, mixer="retention", attention_layers=[1, 11])
    student, report = xatl.transfer(donor, cfg)
"""

__version__ = "0.1.0"

import sys as _sys  # noqa: E402

from .utils.threads import prepare_openmp as _prepare_openmp  # noqa: E402

if "torch" not in _sys.modules:       # idle OpenMP workers sleep, not spin (docs/benchmarks.md: busy-machine figures)
    _prepare_openmp()

from .models import XATLCache, XATLConfig, XATLForCausalLM, XATLModel  # noqa: E402  (registers Auto classes)

__all__ = ["XATLCache", "XATLConfig", "XATLForCausalLM", "XATLModel", "__version__"]
from .donors import COMPONENTS, DEFAULT_COPY, SUPPORTED_MODEL_TYPES, load_donor, load_tokenizer  # noqa: E402
from .mixers import MIXERS  # noqa: E402
from .transfer import TransferReport, convert, save_student, student_config, transfer  # noqa: E402

__all__ += ["COMPONENTS", "DEFAULT_COPY", "MIXERS", "SUPPORTED_MODEL_TYPES", "TransferReport", "convert",
            "load_donor", "load_tokenizer", "save_student", "student_config", "transfer"]

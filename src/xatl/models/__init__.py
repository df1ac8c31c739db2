"""The student model, registered with transformers' Auto classes on import."""

from transformers import AutoConfig, AutoModelForCausalLM

from . import modeling_xatl
from .cache import XATLCache
from .configuration_xatl import XATLConfig
from .modeling_xatl import XATLForCausalLM, XATLModel
from .remote_code import write_remote_code

modeling_xatl.REMOTE_CODE_WRITER = write_remote_code

AutoConfig.register("xatl", XATLConfig, exist_ok=True)
AutoModelForCausalLM.register(XATLConfig, XATLForCausalLM, exist_ok=True)

__all__ = ["XATLCache", "XATLConfig", "XATLForCausalLM", "XATLModel"]

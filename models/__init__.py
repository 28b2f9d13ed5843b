"""CoMeT memory for any Hugging Face decoder-only causal LM (installed as `comet_models`).

    from comet_models import CometConfig, inject_memory, add_memory_tokens
    from comet_models.runtime import new_state, feed, generate
"""
from .config import CometConfig
from .inject import FAMILIES, add_memory_tokens, inject_memory, register_family, remove_memory
from .state import MemoryState

__all__ = ["CometConfig", "FAMILIES", "MemoryState", "add_memory_tokens", "inject_memory",
           "register_family", "remove_memory"]

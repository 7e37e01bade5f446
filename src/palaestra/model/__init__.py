"""Models behind one batched chat interface, created from string ids.

See ``palaestra/model/_core.py`` for the contract and ``_registry.py`` for the ids.
"""

from palaestra.model._core import (
    ChatMessage,
    Completion,
    Conversation,
    FinishReason,
    GenerationConfig,
    Model,
    ModelError,
    Role,
    apply_stop,
)
from palaestra.model._registry import get_model, providers, register_provider
from palaestra.model._scripted import ScriptedModel

__all__ = [
    "ChatMessage",
    "Completion",
    "Conversation",
    "FinishReason",
    "GenerationConfig",
    "Model",
    "ModelError",
    "Role",
    "ScriptedModel",
    "apply_stop",
    "get_model",
    "providers",
    "register_provider",
]

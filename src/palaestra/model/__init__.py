"""Models behind one batched chat interface, created from string ids.

See ``palaestra/model/_core.py`` for the contract and ``_registry.py`` for the ids.
Besides the contract: the training chat templates and their loss-mask probe
(``_templates.py``), and the ``tiny`` model's builders, which take their text
from above (``build_tiny``, ``pretrain_on_documents``; the corpora are
``palaestra.data``'s). Names that need the ``[train]`` extra (torch,
transformers) are imported on first use, so ``import palaestra.model`` never
needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    completion_from_tokens,
)
from palaestra.model._pretrain import (
    PretrainCard,
    PretrainConfig,
    PretrainPolicy,
    load_pretrain_card,
    pretrain_on_documents,
)
from palaestra.model._registry import get_model, providers, register_provider
from palaestra.model._scripted import ScriptedModel
from palaestra.model._templates import (
    CHATML_TEMPLATE,
    mask_spans,
    masking_problem,
    rendering_problem,
    resolve_template,
    template_family,
    tool_template_for,
    training_template_for,
)

if TYPE_CHECKING:
    from palaestra.model._gemma import gemma_path
    from palaestra.model._hf import HFModel
    from palaestra.model._tiny import PRESETS as TINY_PRESETS
    from palaestra.model._tiny import build_tiny, load_tiny

# name -> (module, attribute): imported on first use (they need torch and transformers).
_LAZY = {
    "HFModel": ("palaestra.model._hf", "HFModel"),
    "TINY_PRESETS": ("palaestra.model._tiny", "PRESETS"),
    "build_tiny": ("palaestra.model._tiny", "build_tiny"),
    "gemma_path": ("palaestra.model._gemma", "gemma_path"),
    "load_tiny": ("palaestra.model._tiny", "load_tiny"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHATML_TEMPLATE",
    "TINY_PRESETS",
    "ChatMessage",
    "Completion",
    "Conversation",
    "FinishReason",
    "GenerationConfig",
    "HFModel",
    "Model",
    "ModelError",
    "PretrainCard",
    "PretrainConfig",
    "PretrainPolicy",
    "Role",
    "ScriptedModel",
    "apply_stop",
    "build_tiny",
    "completion_from_tokens",
    "gemma_path",
    "get_model",
    "load_pretrain_card",
    "load_tiny",
    "mask_spans",
    "masking_problem",
    "pretrain_on_documents",
    "providers",
    "register_provider",
    "rendering_problem",
    "resolve_template",
    "template_family",
    "tool_template_for",
    "training_template_for",
]

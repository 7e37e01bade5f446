"""``ScriptedModel``: the public test double (as Inspect's mockllm, pydantic-ai's FunctionModel).

Outputs come from a list (consumed in order, one per prompt across calls), an
iterator, or a function of the conversation. Token counts are whitespace
word counts, flagged as estimated. Stop strings and ``max_new_tokens`` (in
words) are honoured so agent loops see realistic finish reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from palaestra.model._core import (
    Completion,
    Conversation,
    GenerationConfig,
    Model,
    ModelError,
    apply_stop,
)

ScriptFn = Callable[[Conversation], str]


class ScriptedModel(Model):
    """A model whose outputs are scripted. ``calls`` records every prompt it saw."""

    def __init__(self, outputs: Iterable[str] | ScriptFn, *, id: str = "scripted") -> None:
        self.id = id
        self._fn: ScriptFn | None = outputs if callable(outputs) else None
        self._it: Iterator[str] | None = None if callable(outputs) else iter(outputs)
        self.calls: list[Conversation] = []
        self.batch_sizes: list[int] = []

    @classmethod
    def from_id(
        cls, name: str, *, outputs: Iterable[str] | ScriptFn | None = None
    ) -> ScriptedModel:
        """``get_model("scripted", outputs=[...])``."""
        if outputs is None:
            raise ValueError(
                'the scripted model needs outputs: get_model("scripted", outputs=[...])'
            )
        return cls(outputs, id="scripted" + (f"/{name}" if name else ""))

    def _next(self, conv: Conversation) -> str:
        if self._fn is not None:
            return self._fn(conv)
        assert self._it is not None
        try:
            return next(self._it)
        except StopIteration:
            raise ModelError(
                f"scripted model ran out of outputs after {len(self.calls)} calls"
            ) from None

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        config = config or GenerationConfig()
        self.batch_sizes.append(len(prompts))
        out: list[Completion] = []
        for conv in prompts:
            self.calls.append(list(conv))
            text, stopped = apply_stop(self._next(conv), config.stop)
            words = text.split()
            finish = "stop"
            if len(words) > config.max_new_tokens and not stopped:
                text, finish = " ".join(words[: config.max_new_tokens]), "length"
            out.append(
                Completion(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=sum(len(m.content.split()) for m in conv),
                    completion_tokens=min(len(words), config.max_new_tokens),
                    estimated_tokens=True,
                )
            )
        return out

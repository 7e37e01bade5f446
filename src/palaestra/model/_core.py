"""The model contract: chat messages in, completions out, in batches.

Every backend (``hf/…``, ``openai/…``, ``gemma-270m``, ``tiny``, ``scripted``)
implements :class:`Model`. The rollout engine hands a backend the prompts of
many episodes at once, so ``generate`` takes a *batch* of conversations and
returns one :class:`Completion` per conversation, in order.

Semantics
---------
- ``generate(prompts, config)`` is synchronous; ``agenerate`` is its asyncio
  twin (default: ``generate`` in a worker thread). Backends that talk to a
  server override ``agenerate`` with real concurrency.
- ``config.temperature == 0`` means greedy decoding; ``seed`` makes sampling
  reproducible where the backend allows.
- ``stop`` strings end a completion; the stop string itself is not included
  in ``text`` and ``finish_reason`` is ``"stop"``. ``"length"`` means
  ``max_new_tokens`` was reached.
- Token counts are always filled (backends without a tokenizer estimate them
  and say so with ``estimated_tokens=True``). ``token_ids`` and ``logprobs``
  (per generated token) are filled when ``config.logprobs`` is set and the
  backend has them, else ``None``.
- A backend failure that is not the model's fault (server down, out of
  memory) raises :class:`ModelError`; the rollout engine records it as an
  ``error`` outcome.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Defined in palaestra/errors.py with every other exception; re-exported from here, where
# it was defined before (palaestra.model re-exports it too).
from palaestra.errors import ModelError as ModelError

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length"]


class ChatMessage(BaseModel):
    """One chat turn. ``train`` marks whether an assistant turn carries loss in training data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str
    train: bool | None = Field(
        default=None,
        description="For assistant turns in training data: whether the turn carries loss.",
    )


Conversation = Sequence[ChatMessage]


class GenerationConfig(BaseModel):
    """Decoding settings shared by every backend."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=256, ge=1, description="Upper bound on generated tokens.")
    temperature: float = Field(default=0.0, ge=0.0, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: list[str] = Field(default_factory=list, description="Strings that end a completion.")
    seed: int | None = Field(default=None, description="Sampling seed, where supported.")
    logprobs: bool = Field(default=False, description="Return token ids and logprobs if possible.")


class Completion(BaseModel):
    """One generated reply."""

    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    estimated_tokens: bool = False
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


class Model(ABC):
    """A chat model behind one batched interface. See the module docstring."""

    #: The string id the model was created from, e.g. ``"hf/./ckpt"``.
    id: str = ""

    @abstractmethod
    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        """Generate one assistant reply for each conversation of a batch.

        Args:
            prompts: The conversations, each a sequence of :class:`ChatMessage`
                ending where the assistant's reply should start.
            config: Decoding settings; ``None`` means the :class:`GenerationConfig`
                defaults (greedy, at most 256 new tokens).

        Returns:
            One :class:`Completion` per prompt, in the order of ``prompts``. A stop
            string ends the reply (it is not in ``text``; ``finish_reason`` is
            ``"stop"``); ``"length"`` means ``max_new_tokens`` was reached. Token
            counts are always set (``estimated_tokens`` when the backend had no
            tokenizer); ``token_ids`` and ``logprobs`` only with ``config.logprobs``
            and a backend that has them.

        Raises:
            ModelError: The backend failed for a reason that is not the model's
                output (server down, out of memory); the rollout engine records an
                ``error`` outcome.
        """

    async def agenerate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        """:meth:`generate` for asyncio callers (default: ``generate`` in a worker thread).

        Same arguments, result and errors as :meth:`generate`; backends that talk
        to a server override it with real concurrency.
        """
        return await asyncio.to_thread(self.generate, prompts, config)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (GPU memory, HTTP connections)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}>"


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string. Returns the text and whether a stop was hit."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def completion_from_tokens(
    tokens: Sequence[int],
    *,
    decode: Callable[[Sequence[int]], str],
    eos_ids: Collection[int],
    stop: Sequence[str],
    prompt_tokens: int,
    logprobs: Sequence[float] | None = None,
    want_logprobs: bool = False,
) -> Completion:
    """The :class:`Completion` of sampled ``tokens``, as every local backend cuts it.

    The text stops before the first end-of-sequence token (``eos_ids``) or at the
    first stop string; the token ids (and log-probs, when asked) keep the tokens
    that ended it, which is what a trainer scores. A stop string ends at the fewest
    tokens whose decoded text contains it (binary search over ``decode``).
    """
    tokens = list(tokens)
    end = next((j + 1 for j, t in enumerate(tokens) if t in eos_ids), None)
    hit_eos = end is not None
    body = tokens[: end - 1] if end is not None else tokens
    text, stopped = apply_stop(decode(body), stop)
    if stopped:
        lo, hi = 1, len(body)
        while lo < hi:
            mid = (lo + hi) // 2
            if apply_stop(decode(body[:mid]), stop)[1]:
                hi = mid
            else:
                lo = mid + 1
        end = hi
    elif end is None:
        end = len(tokens)
    return Completion(
        text=text,
        finish_reason="stop" if stopped or hit_eos else "length",
        prompt_tokens=prompt_tokens,
        completion_tokens=end,
        token_ids=tokens[:end] if want_logprobs else None,
        logprobs=list(logprobs[:end]) if want_logprobs and logprobs is not None else None,
    )

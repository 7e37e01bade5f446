"""The agent contract: a loop is a generator of typed events.

An agent's ``run(env, task, attempt)`` is a generator. It yields

- :class:`ModelCall` when it needs the model: the driver sends back a
  :class:`~palaestra.model.Completion` (``gen.send(completion)``);
- :class:`Step` after each environment step (streaming, logging, the store
  and the viewer consume this one stream);

and returns an :class:`EpisodeEnd` (via ``StopIteration.value``). Because the
model call is yielded rather than made, one driver can interleave many
episodes and batch their model calls into one ``generate`` — the rollout
engine's cross-episode batching — while a single episode runs with
:func:`run_episode`.

Errors the model causes (unparseable output, invalid actions) are fed back
as observations and counted in the steps; infrastructure failures
(``EnvError``, ``ModelError``) propagate to the driver, which records an
``error`` outcome.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field

from palaestra.env import Environment, Task
from palaestra.model import ChatMessage, Completion, GenerationConfig, Model
from palaestra.trajectory import Outcome, Step


@dataclass
class ModelCall:
    """A request for one completion of ``messages``."""

    messages: list[ChatMessage]
    config: GenerationConfig | None = None
    #: What the call is for ("act", "reflect", ...), for logs and the viewer.
    purpose: str = "act"


@dataclass
class EpisodeEnd:
    """How the loop ended and the conversation it built."""

    outcome: Outcome
    messages: list[ChatMessage] = field(default_factory=list[ChatMessage])
    limit_reason: str | None = None
    metadata: dict[str, object] = field(default_factory=dict[str, object])


AgentLoop = Generator[ModelCall | Step, Completion | None, EpisodeEnd]


def attempt_seed(seed: int, attempt: int) -> int:
    """The sampling seed of attempt ``attempt`` (attempt 0 keeps ``seed``).

    Attempts of a task must be independent samples (pass@k and tau-bench's
    pass^k assume it); with one fixed seed a seeded server (vLLM) would
    return the same completion k times.
    """
    if attempt == 0:
        return seed
    return random.Random(f"palaestra-attempt:{seed}:{attempt}").getrandbits(31)


def for_attempt(config: GenerationConfig, attempt: int) -> GenerationConfig:
    """``config`` with its seed varied per attempt when sampling (greedy is left alone)."""
    if config.temperature == 0 or config.seed is None or attempt == 0:
        return config
    return config.model_copy(update={"seed": attempt_seed(config.seed, attempt)})


class Agent(ABC):
    """An agent loop. Subclasses implement :meth:`run`."""

    #: Registry name (``react``, ``reflexion``, ...).
    name: str = ""
    #: Whether the loop calls a model (the expert and random agents do not).
    needs_model: bool = True
    #: Whether attempt k+1 of a task must start after attempt k ended (Reflexion's memory).
    attempts_in_order: bool = False

    @abstractmethod
    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        """Play one episode of ``task`` on ``env`` (already built; the loop calls reset)."""


def run_episode(
    agent: Agent, env: Environment, task: Task, model: Model | None = None, attempt: int = 0
) -> tuple[list[Step], EpisodeEnd]:
    """Drive one episode synchronously (batch size 1). Returns its steps and its end."""
    loop = agent.run(env, task, attempt)
    steps: list[Step] = []
    reply: Completion | None = None
    while True:
        try:
            event = loop.send(reply)
        except StopIteration as stop:
            return steps, stop.value
        reply = None
        if isinstance(event, ModelCall):
            if model is None:
                raise ValueError(f"agent {agent.name!r} needs a model; pass model=")
            reply = model.generate([event.messages], event.config)[0]
        else:
            steps.append(event)

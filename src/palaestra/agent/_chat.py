"""The chat loop shared by ReAct, Reflexion and CodeAct: one turn = one model reply, acted on.

:class:`ChatAgent` owns everything the three loops have in common, so each
states only its own reply format and what acting means:

- the **episode prologue** (:meth:`ChatAgent.begin`): the per-episode
  :class:`EpisodeContext` (a random stream seeded by seed, task and attempt;
  decoding settings whose seed varies by attempt), the timed ``env.reset``,
  then the system prompt — after the reset, because wrappers (perturbations)
  set up the task's surface on reset and the prompt must describe this task's
  actions — and the first observation as the first user message;
- **asking the model** (:meth:`ChatAgent.decide`): the history truncated to
  ``max_prompt_tokens`` (:func:`~palaestra.agent.fit_history`) and yielded as a
  :class:`ModelCall`, so the rollout engine batches the calls of many episodes;
  test doubles override it to answer without a model;
- **the turn**: the reply is appended to the conversation and a :class:`Step`
  carrying the model's side of the turn (prompt messages, raw output, tokens,
  timings) is handed to :meth:`ChatAgent.act`, which parses the reply, acts,
  yields the turn's Step(s) and says whether the episode ended;
- **the ending**: ``terminated`` is ``success`` or ``failure`` by the
  environment's ``info["success"]``; ``truncated`` is ``limit``
  (``env_truncated``); ``max_steps`` turns — format errors included — is
  ``limit`` (``steps``).

A reply that does not parse is a format error (:meth:`ChatAgent.format_error`):
the feedback is the next user message, the environment is not stepped, and
the turn counts toward the step limit.
"""

from __future__ import annotations

import random
import time
from abc import abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from palaestra.agent._core import Agent, AgentLoop, EpisodeEnd, ModelCall, for_attempt
from palaestra.agent._prompts import TokenCounter, estimate_tokens, fit_history
from palaestra.env import Environment, Observation, Task
from palaestra.model import ChatMessage, Completion, GenerationConfig
from palaestra.trajectory import Outcome, Step


@dataclass
class EpisodeContext:
    """Per-episode state handed to :meth:`ChatAgent.decide` (agents are shared by episodes)."""

    task: Task
    attempt: int
    rng: random.Random
    #: Decoding settings of this episode (the seed varies by attempt).
    generation: GenerationConfig


@dataclass
class ChatEpisode:
    """One episode of a chat loop: its conversation and counters.

    An agent object is shared by concurrent episodes, so everything that
    belongs to one episode lives here (subclass it for more, as CodeAct does
    for its sandbox).
    """

    env: Environment
    ctx: EpisodeContext
    #: The latest observation (the reset's until the environment is stepped).
    last: Observation
    #: The conversation: system prompt, first observation, then (reply, observation) pairs.
    messages: list[ChatMessage] = field(default_factory=list[ChatMessage])
    #: Environment seconds not yet charged to a Step (the reset's, charged to the first).
    env_seconds: float = 0.0
    #: The index of the next Step.
    index: int = 0
    #: Turns begun (model replies asked for).
    turns: int = 0
    #: The last action sent to the environment (for ``Step.repeated_action``).
    previous: str | None = None


E = TypeVar("E", bound=ChatEpisode)

#: What :meth:`ChatAgent.act` is: yields the turn's Steps, returns the end or None to go on.
TurnLoop = Generator[ModelCall | Step, Completion | None, EpisodeEnd | None]


class ChatAgent(Agent, Generic[E]):
    """A loop of model replies acted on (see the module docstring).

    Subclasses implement :meth:`new_episode`, :meth:`instructions` and
    :meth:`act`; :meth:`extra_system`, :meth:`end_metadata` and
    :meth:`close_episode` are optional hooks.
    """

    #: Decoding settings when ``generation`` is not given.
    default_generation: ClassVar[GenerationConfig] = GenerationConfig(
        max_new_tokens=128, stop=["\nObservation"]
    )

    def __init__(
        self,
        *,
        max_steps: int = 30,
        max_prompt_tokens: int = 3072,
        generation: GenerationConfig | None = None,
        count_tokens: TokenCounter = estimate_tokens,
        seed: int = 0,
    ) -> None:
        self.max_steps = max_steps
        self.max_prompt_tokens = max_prompt_tokens
        self.generation = generation or self.default_generation.model_copy(deep=True)
        self.count_tokens = count_tokens
        self.seed = seed

    # ---- hooks ----------------------------------------------------------------------

    @abstractmethod
    def new_episode(self, env: Environment, ctx: EpisodeContext, first: Observation) -> E:
        """The state of a new episode (``env`` was just reset; ``first`` is its observation)."""

    @abstractmethod
    def instructions(self, ep: E) -> str:
        """The episode's system prompt (:meth:`extra_system` is appended to it)."""

    def extra_system(self, task: Task) -> str:
        """More system prompt for ``task`` (Reflexion's memory); empty by default."""
        return ""

    @abstractmethod
    def act(self, ep: E, completion: Completion, step: Step) -> TurnLoop:
        """Act on one reply: parse it, step the environment, yield the turn's Step(s).

        ``step`` carries the model's side of the turn; build the yielded Steps
        from it with :meth:`format_error`, :meth:`observed` or :meth:`record`,
        and append the turn's observation to ``ep.messages``. Return
        :meth:`ending` (or an :class:`EpisodeEnd`) when the episode is over,
        ``None`` to go on.
        """

    def end_metadata(self, ep: E) -> dict[str, object]:
        """``EpisodeEnd.metadata`` of the episode (CodeAct's turn count); empty by default."""
        return {}

    def close_episode(self, ep: E) -> None:
        """Release the episode's resources; runs however the loop ends (closed mid-turn too)."""

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        """Get the next reply: ask the model (test doubles answer without one)."""
        prompt = fit_history(messages, self.max_prompt_tokens, self.count_tokens)
        completion = yield ModelCall(prompt, ctx.generation)
        if not isinstance(completion, Completion):
            raise TypeError("the driver must send a Completion in reply to a ModelCall")
        return completion

    # ---- the loop -------------------------------------------------------------------

    def begin(self, env: Environment, task: Task, attempt: int) -> E:
        """The episode prologue: context, timed reset, system prompt and first observation."""
        rng = random.Random(f"{self.seed}:{task.task_id}:{attempt}")
        ctx = EpisodeContext(task, attempt, rng, for_attempt(self.generation, attempt))
        t0 = time.perf_counter()
        first = env.reset(task)
        env_seconds = time.perf_counter() - t0
        ep = self.new_episode(env, ctx, first)
        ep.env_seconds = env_seconds
        system = self.instructions(ep)
        extra = self.extra_system(task)
        if extra:
            system += "\n\n" + extra
        ep.messages = [
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=first.text),
        ]
        return ep

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        ep = self.begin(env, task, attempt)
        try:
            for _ in range(self.max_steps):
                ep.turns += 1
                new_from = len(ep.messages) - 1
                t0 = time.perf_counter()
                completion = yield from self.decide(env, ep.messages, ep.ctx)
                model_seconds = time.perf_counter() - t0
                ep.messages.append(ChatMessage(role="assistant", content=completion.text))
                step = Step(
                    index=ep.index,
                    prompt_messages=ep.messages[new_from:-1],
                    raw_output=completion.text,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    model_seconds=model_seconds,
                    env_seconds=ep.env_seconds,
                )
                ep.env_seconds = 0.0
                end = yield from self.act(ep, completion, step)
                if end is not None:
                    return end
            return self.episode_end(ep, "limit", limit_reason="steps")
        finally:
            self.close_episode(ep)

    # ---- building steps and ends (for act) ------------------------------------------

    def record(self, ep: E, step: Step, **update: Any) -> Step:
        """``step`` with ``update`` applied and the episode's next index."""
        out = step.model_copy(update={**update, "index": ep.index})
        ep.index += 1
        return out

    def format_error(self, ep: E, step: Step, error: str, feedback: str) -> Step:
        """The Step of a reply that did not parse; ``feedback`` becomes the next user message."""
        ep.messages.append(ChatMessage(role="user", content=feedback))
        return self.record(
            ep, step, format_error=error, observation=feedback, progress=ep.env.progress()
        )

    def observed(
        self,
        ep: E,
        step: Step,
        action: str,
        obs: Observation,
        seconds: float,
        info: dict[str, Any] | None = None,
    ) -> Step:
        """The Step of sending ``action`` (which took ``seconds``) and getting ``obs`` back."""
        out = self.record(
            ep,
            step,
            action=action,
            observation=obs.text,
            reward=obs.reward,
            progress=ep.env.progress(),
            terminated=obs.terminated,
            truncated=obs.truncated,
            invalid_action=bool(obs.info.get("invalid")),
            repeated_action=action == ep.previous,
            info=obs.info if info is None else info,
            env_seconds=seconds,
        )
        ep.previous, ep.last = action, obs
        return out

    def ending(self, ep: E) -> EpisodeEnd | None:
        """The end the latest observation calls for, or None when the episode goes on."""
        if ep.last.terminated:
            return self.episode_end(ep, "success" if ep.last.info.get("success") else "failure")
        if ep.last.truncated:
            return self.episode_end(ep, "limit", limit_reason="env_truncated")
        return None

    def episode_end(self, ep: E, outcome: Outcome, limit_reason: str | None = None) -> EpisodeEnd:
        """The :class:`EpisodeEnd` of ``ep`` (its conversation and :meth:`end_metadata`)."""
        return EpisodeEnd(outcome, ep.messages, limit_reason, self.end_metadata(ep))

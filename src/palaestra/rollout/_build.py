"""Agent, model and engine from run settings: the one builder of every run's engine.

``build_engine(settings, model, parts)`` is what the local backend runs and
what each Ray worker builds for itself. ``settings`` say which agent, budgets
and decoding; ``parts`` (:class:`EngineParts`) say what a kind of run adds:
its environments, a wrapper around the agent, per-episode metadata. A rollout's
parts come from its config (:func:`rollout_parts`); an eval's from its suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from palaestra.agent import Agent, ReflexionAgent, get_agent
from palaestra.env import Environment, Task, make
from palaestra.model import GenerationConfig, Model, get_model
from palaestra.rollout._config import RolloutConfig, RunSettings
from palaestra.rollout._engine import Limits, RolloutEngine
from palaestra.trajectory import RunStore


@dataclass(frozen=True)
class EngineParts:
    """What a kind of run adds to its settings to make an engine.

    Everything here must pickle (cloudpickle, as Ray sends it to its workers):
    classes and module-level functions by reference, closures by value.
    """

    #: Makes one environment (the engine calls it once per episode slot).
    envs: Callable[[], Environment]
    #: The environment waits on the network (an env server): step it off the event loop.
    remote_env: bool = False
    #: Wraps the agent the settings describe (eval's ``SuiteAgent``).
    wrap_agent: Callable[[Agent], Agent] | None = None
    #: ``Episode.metadata`` of each (task, attempt); also on ``error`` episodes.
    episode_metadata: Callable[[Task, int], Mapping[str, Any]] | None = None


def env_factory(config: RolloutConfig) -> Callable[[], Environment]:
    """Environments of ``config.env``: in-process, or on the env server at ``config.env_url``."""
    if config.env_url:
        from palaestra.env.server import RemoteEnvironment

        url = config.env_url
        return lambda: RemoteEnvironment(
            url, config.env, perturbations=config.perturbations or None
        )
    return lambda: make(config.env, perturbations=config.perturbations or None)


def rollout_parts(config: RolloutConfig) -> EngineParts:
    """The engine parts of a rollout: the config's environment, the agent as it is."""
    return EngineParts(envs=env_factory(config), remote_env=config.env_url is not None)


def needs_model(settings: RunSettings) -> bool:
    """Whether the settings' agent calls a model (expert and random do not)."""
    return get_agent(settings.agent).needs_model


def load_model(settings: RunSettings) -> Model | None:
    """The model the settings name, built here; ``None`` for agents that need none."""
    if not needs_model(settings):
        return None
    if not settings.model:
        raise ValueError(f"agent {settings.agent!r} needs --model")
    kwargs = {"base_url": settings.base_url} if settings.base_url else {}
    return get_model(settings.model, **kwargs)


def build_agent(settings: RunSettings, model: Model | None) -> Agent:
    """The agent ``settings`` describe, counting tokens with ``model``'s tokenizer when it has one."""
    kwargs: dict[str, Any] = {
        # Agents call agent turns max_steps (their own API); configs call them max_turns.
        "max_steps": settings.max_turns,
        "max_prompt_tokens": settings.max_prompt_tokens,
    }
    if settings.prompt != "full":  # only the ReAct family of agents takes it
        kwargs["prompt"] = settings.prompt
    kwargs["generation"] = GenerationConfig(
        temperature=settings.temperature,
        max_new_tokens=settings.max_new_tokens,
        seed=settings.seed,
        stop=["\nObservation"],
    )
    counter = getattr(model, "count_tokens", None)
    if callable(counter):
        kwargs["count_tokens"] = counter
    kwargs["seed"] = settings.seed
    if settings.agent.startswith("search:"):
        kwargs["search"] = settings.search
    if settings.memory is not None:
        kwargs["memory"] = settings.memory
        kwargs["memory_k"] = settings.memory_k
    return get_agent(settings.agent, **kwargs)


def reflexion_of(agent: Agent) -> ReflexionAgent | None:
    """The Reflexion agent in ``agent`` (itself, or the one a wrapper holds as ``inner``)."""
    inner = getattr(agent, "inner", agent)
    return inner if isinstance(inner, ReflexionAgent) else None


def make_engine(
    agent: Agent,
    envs: Callable[[], Environment],
    model: Model | None,
    *,
    run_id: str,
    store: RunStore | None,
    concurrency: int,
    limits: Limits,
    max_retries: int,
    remote_env: bool = False,
    episode_metadata: Callable[[Task, int], Mapping[str, Any]] | None = None,
) -> RolloutEngine:
    """A :class:`RolloutEngine` whose environments step off the event loop when a step blocks.

    Remote environments wait on the network, CodeAct's on a sandboxed
    interpreter. On the loop's thread such a step would stall every other
    episode in flight.
    """
    return RolloutEngine(
        agent,
        envs,
        model,
        run_id=run_id,
        concurrency=concurrency,
        limits=limits,
        max_retries=max_retries,
        store=store,
        env_in_thread=remote_env or agent.name.startswith("codeact"),
        episode_metadata=episode_metadata,
    )


def build_engine(
    settings: RunSettings,
    model: Model | None,
    parts: EngineParts | None = None,
    *,
    run_id: str,
    store: RunStore | None,
) -> RolloutEngine:
    """The engine ``settings`` and ``parts`` describe (the local backend, and each Ray worker).

    ``parts`` may be left out for a :class:`RolloutConfig` (its own environment).
    """
    if parts is None:
        if not isinstance(settings, RolloutConfig):
            raise TypeError("build_engine needs parts for settings other than a RolloutConfig")
        parts = rollout_parts(settings)
    agent = build_agent(settings, model if needs_model(settings) else None)
    if parts.wrap_agent is not None:
        agent = parts.wrap_agent(agent)
    return make_engine(
        agent,
        parts.envs,
        model if agent.needs_model else None,
        run_id=run_id,
        store=store,
        concurrency=settings.concurrency,
        limits=Limits(max_tokens=settings.max_tokens, max_seconds=settings.max_seconds),
        max_retries=settings.max_retries,
        remote_env=parts.remote_env,
        episode_metadata=parts.episode_metadata,
    )

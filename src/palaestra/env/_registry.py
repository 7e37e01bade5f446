"""The environment registry: versioned string ids → environment factories.

``register("shop-v1", "palaestra.env.families.shop:ShopEnv")`` binds an id to
an entry point (a ``"module:attr"`` string, imported only when the id is
made, or a callable). An id's meaning never changes: a changed world gets a
new version (``shop-v2``), and re-registering an id with a different entry
point is an error unless ``override=True``.

On first use the registry registers the built-in table (``_builtin.py``),
then the external adapters (``external/``). Third-party packages register
environments through the ``palaestra.envs`` entry-point group: each entry
point names a function, called once on first use of the registry, that calls
:func:`register`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from typing import Any

from pydantic import JsonValue

from palaestra.env import _injection
from palaestra.env._builtin import BUILTIN_SPECS
from palaestra.env._core import DIFFICULTIES, SPLITS, Difficulty, Environment, Split, Task
from palaestra.env._spec import EnvFactory as EnvFactory  # re-export: defined in _spec.py
from palaestra.env._spec import EnvSpec as EnvSpec
from palaestra.env._wrappers import Perturb, Perturbation, StepLimit

ENTRY_POINT_GROUP = "palaestra.envs"
_ID_RE = re.compile(r"^(?:[\w.]+/)?[a-z0-9][\w.-]*-v\d+$")

_REGISTRY: dict[str, EnvSpec] = {}
_plugins_loaded = False


def register(
    id: str,
    entry_point: str | EnvFactory,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    override: bool = False,
    source: str = "palaestra",
    client_kwargs: Iterable[str] = (),
) -> EnvSpec:
    """Register an environment under a versioned id such as ``"shop-v1"`` or ``"acme/kitchen-v2"``.

    ``kwargs`` are fixed constructor arguments; ``client_kwargs`` names the
    constructor arguments that clients of the environment server may set
    (see :attr:`EnvSpec.client_kwargs`; none by default).
    """
    if not _ID_RE.match(id):
        raise ValueError(
            f"environment id {id!r} is not versioned: use lower-case 'name-vN' "
            "(optionally 'namespace/name-vN'), e.g. 'shop-v1'"
        )
    if isinstance(entry_point, str) and ":" not in entry_point:
        raise ValueError(f"entry_point {entry_point!r} must look like 'package.module:ClassName'")
    if _plugin_source is not None and source == "palaestra":
        source = _plugin_source
    if isinstance(client_kwargs, str):
        raise TypeError("client_kwargs takes a collection of argument names, not one str")
    spec = EnvSpec(
        id, entry_point, max_episode_steps, dict(kwargs or {}), source, frozenset(client_kwargs)
    )
    old = _REGISTRY.get(id)
    if (
        old is not None
        and not override
        and (old.entry_point, old.kwargs)
        != (
            spec.entry_point,
            spec.kwargs,
        )
    ):
        raise ValueError(
            f"environment id {id!r} is already registered to {old.entry_point!r}; ids never change "
            "meaning: register a new version (e.g. bump -vN), or pass override=True"
        )
    _REGISTRY[id] = spec
    return spec


_plugin_source: str | None = None  # the distribution whose entry point is registering now


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for builtin in BUILTIN_SPECS:
        register(
            builtin.id,
            builtin.entry_point,
            max_episode_steps=builtin.max_episode_steps,
            kwargs=builtin.kwargs,
            client_kwargs=builtin.client_kwargs,
        )
    # Adapters to other people's environments: each registers its ids, cheaply (no
    # third-party import until an id is made).
    from palaestra.env.external import register_external

    register_external()
    global _plugin_source
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # What a plugin registers is the plugin's, whatever source= it passes (or omits):
        # "palaestra" is reserved for what ships with Palaestra.
        _plugin_source = ep.dist.name if ep.dist is not None else f"plugin:{ep.name}"
        try:
            ep.load()()
        except Exception as e:  # a broken plugin must not break the built-in envs
            warnings.warn(
                f"palaestra.envs entry point {ep.name!r} ({ep.value}) failed to load: {e}",
                stacklevel=2,
            )
        finally:
            _plugin_source = None


def registry() -> dict[str, EnvSpec]:
    """All registered environments, by id (built-ins and plugins)."""
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def spec(id: str) -> EnvSpec:
    """The registration of ``id``; a clear error with close matches when unknown."""
    reg = registry()
    if id in reg:
        return reg[id]
    from palaestra.env._suggest import unknown_env_message

    raise KeyError(unknown_env_message(id, reg))


def make(
    id: str,
    *,
    max_episode_steps: int | None = None,
    perturbations: Sequence[Perturbation] | None = None,
    perturbation_seed: int = 0,
    **kwargs: Any,
) -> Environment:
    """Build the environment registered as ``id``.

    ``max_episode_steps`` overrides the registered step limit (0 disables it);
    ``perturbations`` wraps the environment in :class:`Perturb`. Other keyword
    arguments go to the environment's constructor.
    """
    s = spec(id)
    env = s.load()(**{**s.kwargs, **kwargs})
    env.env_id = id
    if perturbations and "inject_instruction" in perturbations and not env.third_party_text:
        env.close()  # refused here, where the registry can list the environments that can
        raise ValueError(_injection.refusal(id, _injection.injectable_envs(registry())))
    if perturbations:
        env = Perturb(env, perturbations, seed=perturbation_seed)
    limit = s.max_episode_steps if max_episode_steps is None else max_episode_steps
    if limit:
        env = StepLimit(env, limit)
    return env


def tasks(
    id: str,
    split: Split = "train",
    n: int = 10,
    difficulty: Difficulty | Iterable[Difficulty] | None = None,
    *,
    start: int = 0,
    **params: JsonValue,
) -> list[Task]:
    """The task suite of ``id``: ``n`` tasks of ``split`` with seeds ``start, start+1, ...``.

    ``difficulty=None`` cycles through easy, medium and hard. Task generation
    is deterministic: the same arguments give the same tasks on every machine.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if difficulty is None:
        levels: list[Difficulty] = list(DIFFICULTIES)
    elif isinstance(difficulty, str):
        levels = [difficulty]
    else:
        levels = list(difficulty)
    for lv in levels:
        if lv not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}, got {lv!r}")
    env = make(id, max_episode_steps=0)
    try:
        return [
            env.make_task(start + i, split, levels[i % len(levels)], **params) for i in range(n)
        ]
    finally:
        env.close()

"""Gymnasium adapter: any Palaestra environment as a ``gymnasium.Env`` with text spaces.

Follows the Gymnasium 1.x ``Env`` API (``reset(seed=, options=) -> (obs,
info)``, ``step(action) -> (obs, reward, terminated, truncated, info)``) and
passes ``gymnasium.utils.env_checker.check_env``, determinism checks
included. Observations and actions are ``spaces.Text`` over
``string.printable``: Gymnasium's default alphanumeric charset rejects natural
language, so observation text is folded to printable ASCII (typographic
quotes and dashes become their ASCII forms, accents are stripped, the rest is
dropped) and cut to ``max_length`` characters, with ``info["text_truncated"]``
saying when that happened.

Which task an episode plays: ``reset(options={"task": task})`` plays that
task; otherwise a task is drawn from ``tasks`` with the seeded
``np_random``; otherwise ``make_task(seed)`` when a seed is given, else
``make_task`` of a seed drawn from ``np_random``. So ``reset(seed=s)`` always
plays the same episode, and so does the sequence of unseeded resets after it.
As in the Palaestra contract, ``step`` after the episode ended raises
``ResetNeeded``; a bad action is an observation, never an exception.

Needs the ``[gym]`` extra (``pip install "palaestra[gym]"``).
"""

from __future__ import annotations

import copy
import json
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, SupportsFloat

from palaestra.env._core import Difficulty, Environment, Observation, Split, Task
from palaestra.env._registry import make

try:
    import gymnasium
    from gymnasium import spaces
    from gymnasium.envs.registration import EnvSpec
except ImportError as e:  # pragma: no cover - exercised by a test that hides gymnasium
    raise ImportError(
        "The Gymnasium adapter needs gymnasium, which is not installed. Install it with:\n"
        'pip install "palaestra[gym]"'
    ) from e

__all__ = ["CHARSET", "GymnasiumEnv", "to_ascii_text", "to_gymnasium"]

#: The character set of the observation and action spaces.
CHARSET = string.printable
_CHARSET = frozenset(CHARSET)
_TRUNCATION_MARK = " [...]"

# Characters NFKD does not reduce to ASCII but that have an obvious ASCII spelling.
_ASCII_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u2022": "*",
        "\u00b7": "*",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u00d7": "x",
        "\u00f7": "/",
        "\u2192": "->",
        "\u2190": "<-",
        "\u00df": "ss",
        "\u00e6": "ae",
        "\u00c6": "AE",
        "\u00f8": "o",
        "\u00d8": "O",
        "\u0142": "l",
        "\u0141": "L",
        "\u20ac": "EUR",
        "\u00a3": "GBP",
    }
)


def to_ascii_text(text: str, max_length: int | None = None) -> tuple[str, bool]:
    """Fold ``text`` into :data:`CHARSET` and cut it to ``max_length``; return ``(text, truncated)``.

    A cut text ends with ``" [...]"`` so an agent reading it knows there was more.
    """
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    clean = "".join(c for c in folded if c in _CHARSET)
    if max_length is None or len(clean) <= max_length:
        return clean, False
    if max_length <= len(_TRUNCATION_MARK):
        return clean[:max_length], True
    return clean[: max_length - len(_TRUNCATION_MARK)] + _TRUNCATION_MARK, True


EnvSource = Environment | str | Callable[[], Environment]


class GymnasiumEnv(gymnasium.Env[str, str]):
    """A Palaestra :class:`~palaestra.env.Environment` behind the Gymnasium API.

    Build it with :func:`to_gymnasium`. ``render_mode="ansi"`` makes
    :meth:`render` return the latest observation text.
    """

    # render_fps: Gymnasium's checker asks every env with a render mode to declare one. Text
    # has no frame rate; 4 is what Gymnasium's own text envs (Taxi, FrozenLake) declare.
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(
        self,
        env: EnvSource,
        tasks: Sequence[Task] | None = None,
        *,
        max_length: int = 8192,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        render_mode: Literal["ansi"] | None = None,
    ) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if tasks is not None and not tasks:
            raise ValueError("tasks is empty: pass None to generate tasks from seeds")
        self.env: Environment = make(env) if isinstance(env, str) else _instantiate(env)
        self.tasks: tuple[Task, ...] | None = tuple(tasks) if tasks is not None else None
        self.max_length = max_length
        self.split: Split = split
        self.difficulty: Difficulty = difficulty
        self.render_mode = render_mode
        self.observation_space = spaces.Text(max_length, min_length=0, charset=CHARSET)
        self.action_space = spaces.Text(max_length, charset=CHARSET)
        self._text = ""
        self._closed = False
        if not isinstance(env, Environment) and self.env.env_id:
            # A rebuildable source gets a spec, which lets gymnasium.make and check_env's
            # determinism checks (skipped when spec is None) recreate it.
            source, task_list = env, self.tasks

            def entry_point(**kwargs: Any) -> GymnasiumEnv:
                # gymnasium.make passes only render_mode (and the spec's empty kwargs).
                return GymnasiumEnv(
                    source,
                    task_list,
                    max_length=max_length,
                    split=split,
                    difficulty=difficulty,
                    render_mode=kwargs.get("render_mode"),
                )

            self.spec = EnvSpec(id=self.env.env_id, entry_point=entry_point, nondeterministic=False)

    # ---- the Gymnasium API ----------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        task = self._choose_task(seed, options or {})
        obs = self.env.reset(task)
        text, info = self._convert(obs)
        info["task_id"] = task.task_id
        info["instruction"] = task.instruction
        return text, info

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        obs = self.env.step(str(action))
        text, info = self._convert(obs)
        return text, float(obs.reward), obs.terminated, obs.truncated, info

    def render(self) -> str | None:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self._text if self.render_mode == "ansi" else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()

    # ---- helpers ----------------------------------------------------------------

    def _choose_task(self, seed: int | None, options: Mapping[str, Any]) -> Task:
        chosen = options.get("task")
        if chosen is not None:
            return _as_task(chosen)
        if self.tasks is not None:
            return self.tasks[int(self.np_random.integers(len(self.tasks)))]
        task_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        return self.env.make_task(task_seed, self.split, self.difficulty)

    def _convert(self, obs: Observation) -> tuple[str, dict[str, Any]]:
        text, cut = to_ascii_text(obs.text, self.max_length)
        self._text = text
        # A deep copy: Gymnasium requires that no two calls return shared objects.
        info = copy.deepcopy(obs.info)
        info["text_truncated"] = cut
        return text, info

    def __repr__(self) -> str:
        return f"<GymnasiumEnv {self.env!r}>"


def _instantiate(source: Environment | Callable[[], Environment]) -> Environment:
    if isinstance(source, Environment):
        return source
    env = source()
    if not isinstance(env, Environment):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(
            f"the environment factory returned {type(env).__name__}, not an Environment"
        )
    return env


def _as_task(value: object) -> Task:
    if isinstance(value, Task):
        return value
    if isinstance(value, str | bytes):
        return Task.from_json(value)
    if isinstance(value, Mapping):
        return Task.from_json(json.dumps(value))
    raise TypeError(
        f'options["task"] must be a Task, its JSON or its dict, got {type(value).__name__}'
    )


def to_gymnasium(
    env: EnvSource,
    tasks: Sequence[Task] | None = None,
    *,
    max_length: int = 8192,
    split: Split = "train",
    difficulty: Difficulty = "easy",
    render_mode: Literal["ansi"] | None = None,
) -> GymnasiumEnv:
    """Wrap ``env`` (an instance, a registered id, or a zero-argument factory) as a ``gymnasium.Env``.

    ``tasks`` fixes the pool that unseeded-by-option resets draw from; without
    it, tasks are generated with ``split`` and ``difficulty``. Observations are
    at most ``max_length`` characters. An id or factory (not an instance) also
    gives the adapter a Gymnasium ``spec``, so ``gymnasium.make(adapter.spec)``
    builds a fresh copy. ``close()`` closes the wrapped environment.
    """
    return GymnasiumEnv(
        env,
        tasks,
        max_length=max_length,
        split=split,
        difficulty=difficulty,
        render_mode=render_mode,
    )

"""``AgentGymEnv``: an :class:`Environment` driven over AgentGym's env-server HTTP protocol.

Follows the clients in AgentGym (Xi et al., 2024, "AgentGym: Evolving Large
Language Model-based Agents across Diverse Environments";
``agentenv/agentenv/envs/*.py`` in WooooDyy/AgentGym): ``POST /create`` once,
then ``POST /reset`` with a task index and ``POST /step`` with a text action.
The servers differ in field names and scores; :mod:`._dialects` holds that
table, this class only follows it.

Mapping onto our contract (``palaestra/env/_core.py``):

- **Tasks.** ``Task.seed`` is AgentGym's task index (``data_idx``, WebShop's
  ``session_id``, ALFWorld's ``game``). AgentGym's train/test splits are lists
  of item ids in its Hugging Face data sets (AgentTraj-L, AgentEval), not
  ranges its code documents, so by default every split indexes the server's
  whole task list (split is then a label); pass ``split_ranges={"test": [0,
  200], ...}`` to pin disjoint index ranges (``seed`` counts from the range
  start). AgentGym has no difficulty levels: ``difficulty`` is a label.
  ``make_task`` never calls the server, so its instruction names the task
  and the goal itself is in the first observation.
- **Rewards.** Progress comes from the server's score (see the table); the
  episode pays its final score as the reward of the terminal step, so the
  rewards of an episode sum to its score, as for our families.
- **Invalid actions** are observations with feedback (``reject``), never
  errors: rejected here when the server lists every valid action, else
  recognised from the simulator's refusal text.
- **No expert**: the servers expose no oracle; :meth:`expert` raises
  ``NotImplementedError``.
- **Snapshots** replay the episode from its task (the default); the AgentGym
  simulators are deterministic per task index.
- **Failures** — no server, a dropped connection, a timeout, an HTTP error, or
  the ``{"error": ...}`` answer AgentGym servers give when their simulator
  raises — are :class:`EnvError` (an error outcome, never a reward of 0).

The server instance is created on the first ``reset`` (WebShop loads its
catalogue per instance, which takes seconds), so ``make`` and ``make_task``
cost nothing; it is freed on :meth:`close` where the server has a route.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import JsonValue

from palaestra.env._core import Difficulty, EnvError, Environment, Observation, Split, Task
from palaestra.env.external.agentgym._dialects import DIALECTS, babyai_actions
from palaestra.env.server._client import _Http  # pyright: ignore[reportPrivateUsage]

#: ``PALAESTRA_AGENTGYM_<NAME>_URL``: the server's base URL when ``base_url`` is not given.
URL_ENV_VAR = "PALAESTRA_AGENTGYM_{}_URL"


def url_env_var(dialect: str) -> str:
    return URL_ENV_VAR.format(dialect.upper())


class AgentGymEnv(Environment):
    """An AgentGym environment server's task set as a Palaestra environment.

    Use a subclass per server (``WebShopEnv`` ...) or pass ``dialect`` (one of
    ``webshop``, ``alfworld``, ``sciworld``, ``babyai``, ``textcraft``).
    ``base_url`` (e.g. ``http://127.0.0.1:36001``) defaults to the
    ``PALAESTRA_AGENTGYM_<DIALECT>_URL`` environment variable. ``timeout``:
    seconds one request may take. ``split_ranges``: optional ``{split:
    [start, stop)}`` task-index ranges (see the module docstring).
    """

    description: ClassVar[str] = "An environment served by an AgentGym env server."
    #: The dialect a subclass speaks (set by ``class X(AgentGymEnv, dialect=...)``).
    dialect_name: ClassVar[str | None] = None
    has_expert = False

    def __init_subclass__(cls, dialect: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if dialect is not None:
            d = DIALECTS[dialect]
            cls.dialect_name = dialect
            cls.description = d.description
            cls.action_help = d.action_help
            cls.action_verbs = d.action_verbs

    def __init__(
        self,
        base_url: str | None = None,
        *,
        dialect: str | None = None,
        timeout: float = 120.0,
        split_ranges: Mapping[str, tuple[int, int] | list[int]] | None = None,
    ) -> None:
        name = dialect or self.dialect_name
        if name not in DIALECTS:
            raise ValueError(
                f"dialect must be one of {sorted(DIALECTS)}, got {name!r} "
                "(it names the AgentGym environment server)"
            )
        d = DIALECTS[name]
        super().__init__(f"agentgym/{d.name}-v1")
        self.dialect = d
        var = url_env_var(d.name)
        url = base_url or os.environ.get(var)
        if not url:
            raise ValueError(
                f"{self.env_id} needs the URL of a running AgentGym {d.title} server: pass "
                f"make({self.env_id!r}, base_url='http://127.0.0.1:PORT') or set {var}. "
                f"Start one from its own environment with {d.server}."
            )
        self._http = _Http(url, None, timeout)
        self.base_url = self._http.base_url
        self._ranges = _check_ranges(split_ranges)
        self._server_id: JsonValue = None
        self._payload: Any = None
        self._text = ""
        self._listed: list[str] | None = None
        self._search = ""
        self._progress = 0.0

    # ---- transport ---------------------------------------------------------------

    def _call(self, method: str, route: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        status, raw = self._http.request(method, route, data)
        where = f"{self.env_id}: {method} {route.split('?')[0]} at {self.base_url}"
        if status != 200:
            text = raw.decode(errors="replace")[:500]
            hint = ""
            if status in (404, 405, 422):
                hint = (
                    f" — is this an AgentGym {self.dialect.title} server ({self.dialect.server})?"
                )
            raise EnvError(f"{where} answered HTTP {status}: {text}{hint}")
        try:
            payload = json.loads(raw)
        except ValueError as e:
            raise EnvError(f"{where} answered something that is not JSON: {raw[:200]!r}") from e
        if isinstance(payload, dict) and "error" in payload:
            raise EnvError(f"{where} reported an error: {payload['error']}")
        return payload

    def _with_id(self, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**(body or {}), self.dialect.id_key: self._server_id}

    def _query(self, route: str) -> str:
        return f"/{route}?{self.dialect.id_key}={self._server_id}"

    def _ensure_created(self) -> None:
        if self._server_id is not None:
            return
        created = self._call("POST", "/create", self.dialect.create_body)
        if isinstance(created, dict):
            created = created.get("id")
        if not isinstance(created, int | str) or isinstance(created, bool):
            raise EnvError(f"{self.env_id}: /create at {self.base_url} gave no id: {created!r}")
        self._server_id = created

    # ---- tasks -------------------------------------------------------------------

    def data_index(self, seed: int, split: Split) -> int:
        """The server's task index for ``(seed, split)``."""
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if split not in self._ranges:
            return seed
        start, stop = self._ranges[split]
        if start + seed >= stop:
            raise ValueError(
                f"seed {seed} is outside split {split!r}: split_ranges gives it task indices "
                f"[{start}, {stop}), i.e. seeds 0..{stop - start - 1}"
            )
        return start + seed

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        if params:
            raise ValueError(
                f"{self.env_id} tasks take no params (got {sorted(params)}): a task is "
                "fixed by its index on the server"
            )
        idx = self.data_index(seed, split)
        instruction = (
            f"Solve AgentGym {self.dialect.title} task {idx}; its goal is in the observation."
        )
        return self._new_task(seed, split, difficulty, {}, instruction)

    # ---- episodes ----------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        self._ensure_created()
        d = self.dialect
        idx = self.data_index(task.seed, task.split)
        payload = self._call("POST", "/reset", self._with_id(d.reset_body(idx)))
        text = d.reset_text(payload)
        if text is None:
            text = self._call("GET", self._query("observation"))
            if not isinstance(text, str):
                raise EnvError(f"{self.env_id}: /observation gave no text: {text!r}")
        self._payload = payload
        self._text = text
        self._progress = d.progress(payload if isinstance(payload, dict) else {}, False)
        self._search = ""
        self._listed = None
        if d.actions == "webshop_route":
            instruction = self._call("GET", self._query("instruction_text"))
            if isinstance(instruction, str):
                self._search = instruction.removeprefix("Instruction:").strip()
        return f"{task.instruction}\n\n{text}"

    def _step(self, action: str) -> Observation:
        d = self.dialect
        if action.lower() in d.also_valid:
            send = action.lower()
        else:
            send, why = d.check(action, self.available_actions())
            if send is None:
                return self.reject(f"{why} {self._actions_hint()}".strip())
        payload = self._call("POST", "/step", self._with_id({"action": send}))
        if not isinstance(payload, dict):
            raise EnvError(f"{self.env_id}: /step answered {payload!r}, not an object")
        text = payload.get(d.step_text_key)
        if not isinstance(text, str):
            raise EnvError(f"{self.env_id}: /step answer lacks {d.step_text_key!r}: {payload!r}")
        if any(text.strip().startswith(p) for p in d.invalid_prefixes):
            # The simulator refused the action and changed nothing.
            return self.reject(f"{text.strip()} {self._actions_hint()}".strip())
        done = bool(payload.get("done", False))
        self._payload = payload
        self._text = text
        self._listed = None
        self._progress = d.progress(payload, done)
        info: dict[str, Any] = {"server_reward": payload.get("reward")}
        if "score" in payload:
            info["server_score"] = payload.get("score")
        if not done:
            return Observation(text=text, info=info)
        success = d.success(payload, done)
        info["success"] = success
        return Observation(text=text, reward=self._progress, terminated=True, info=info)

    def _actions_hint(self) -> str:
        listed = self.available_actions()
        shown = ", ".join(listed[:30]) + (", ..." if len(listed) > 30 else "")
        return f"Available actions: {shown}. {self._grammar_hint()}".strip()

    # ---- the rest of the contract ----------------------------------------------------

    def available_actions(self) -> list[str]:
        if self._listed is None:
            self._listed = self._ACTION_SOURCES[self.dialect.actions](self)
        return list(self._listed)

    def _actions_webshop(self) -> list[str]:
        got = self._call("GET", self._query("available_actions"))
        if not isinstance(got, dict):
            raise EnvError(f"{self.env_id}: /available_actions answered {got!r}")
        clickables = [str(c) for c in got.get("clickables", []) if str(c) != "search"]
        listed = [f"click[{c}]" for c in clickables]
        if got.get("has_search_bar"):
            listed.insert(0, f"search[{self._search or 'product'}]")
        return listed

    def _actions_payload(self) -> list[str]:
        got = self._payload.get("available_actions") if isinstance(self._payload, dict) else None
        if got is None and self._server_id is not None:
            got = self._call("GET", self._query("available_actions"))
        return [str(a) for a in got] if isinstance(got, list) else []

    def _actions_text(self) -> list[str]:
        return babyai_actions(self._text)

    def _actions_fixed(self) -> list[str]:
        return list(self.dialect.fixed_actions)

    _ACTION_SOURCES: ClassVar[dict[str, Callable[[AgentGymEnv], list[str]]]] = {
        "webshop_route": _actions_webshop,
        "payload": _actions_payload,
        "text": _actions_text,
        "fixed": _actions_fixed,
    }

    def progress(self) -> float:
        return self._progress

    def expert(self) -> str:
        raise NotImplementedError(
            f"{self.env_id} has no expert: AgentGym's {self.dialect.title} server exposes no "
            "oracle (use its AgentTraj trajectories, or a palaestra family, for demonstrations)"
        )

    def _close(self) -> None:
        try:
            if self._server_id is not None and self.dialect.close_path is not None:
                self._call("POST", f"/{self.dialect.close_path}", self._with_id())
        except EnvError:
            pass  # best effort: the server may be gone or have no such route
        finally:
            self._server_id = None
            self._http.close()


def _check_ranges(
    ranges: Mapping[str, tuple[int, int] | list[int]] | None,
) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for split, r in (ranges or {}).items():
        if split not in ("train", "test", "heldout"):
            raise ValueError(f"split_ranges keys are train/test/heldout, got {split!r}")
        if len(r) != 2 or not 0 <= r[0] < r[1]:
            raise ValueError(
                f"split_ranges[{split!r}] must be [start, stop) with 0 <= start < stop, got {r!r}"
            )
        out[split] = (int(r[0]), int(r[1]))
    return out


class WebShopEnv(AgentGymEnv, dialect="webshop"):
    """AgentGym's WebShop server (``agentenv-webshop``)."""


class ALFWorldEnv(AgentGymEnv, dialect="alfworld"):
    """AgentGym's ALFWorld server (``agentenv-alfworld``)."""


class SciWorldEnv(AgentGymEnv, dialect="sciworld"):
    """AgentGym's ScienceWorld server (``agentenv-sciworld``)."""


class BabyAIEnv(AgentGymEnv, dialect="babyai"):
    """AgentGym's BabyAI server (``agentenv-babyai``)."""


class TextCraftEnv(AgentGymEnv, dialect="textcraft"):
    """AgentGym's TextCraft server (``agentenv-textcraft``)."""

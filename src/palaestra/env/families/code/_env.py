"""``CodeEnv``: the ``code-v1`` environment (see the package docstring for the design)."""

from __future__ import annotations

import functools
import json
import random
import re
from collections import OrderedDict
from typing import Any, ClassVar

from pydantic import JsonValue

from palaestra.env._core import (
    Difficulty,
    EnvError,
    Environment,
    Observation,
    Split,
    StateSnapshotMixin,
    Task,
)
from palaestra.env.families.code._problems import HELDOUT, N_HIDDEN, TEMPLATES, Problem
from palaestra.env.families.code._runner import RunResult, run_cases, same

__all__ = ["CodeEnv", "define_action"]

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)
_DEFINE = re.compile(r"define(?=$|[\s`\[])", re.IGNORECASE)
_CACHE_SIZE = 256
_SHOW_FAILS = 3


def define_action(code: str) -> str:
    """The ``define`` action carrying ``code`` (a fenced block: whitespace survives everything)."""
    return f"define\n```python\n{code.strip(chr(10))}\n```"


def _repr_call(name: str, args: list[Any]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _canon(value: Any) -> Any:
    return json.loads(json.dumps(value))


@functools.lru_cache(maxsize=512)
def _generate(env_id: str, seed: int, split: str, difficulty: Difficulty) -> tuple[Problem, str]:
    """The problem of a task and its expected outputs (JSON: visible, hidden). Cached: cheap
    but called on every reset."""
    pool = HELDOUT[difficulty] if split == "heldout" else TEMPLATES[difficulty]
    rng = random.Random(f"{env_id}:{split}:{difficulty}:{seed}")
    template = pool[rng.randrange(len(pool))]
    for _ in range(50):
        problem = template(rng, N_HIDDEN[difficulty])
        namespace: dict[str, Any] = {}
        exec(compile(problem.reference, "<reference>", "exec"), namespace)  # our own code
        fn = namespace[problem.name]
        visible = [_canon(fn(*args)) for args in problem.visible]
        hidden = [_canon(fn(*args)) for args in problem.hidden]
        # A task that a constant or the identity solves is no test: draw again.
        texts = {json.dumps(h, sort_keys=True) for h in hidden}
        identity = all(
            same(_canon(args[0]), h) for args, h in zip(problem.hidden, hidden, strict=True)
        )
        if len(texts) > 1 and not identity:
            return problem, json.dumps([visible, hidden])
    raise RuntimeError(f"code-v1: template {template.__name__} keeps drawing trivial tests")


class CodeEnv(StateSnapshotMixin, Environment):
    """Write a Python function that passes hidden unit tests; the code runs in a sandbox."""

    env_id = "code-v1"
    description: ClassVar[str] = (
        "Programming tasks: write one Python function - string, list and dict "
        "transformations and small algorithms - from a description, its signature and a few "
        "examples. Defining the function runs it on the examples in a sandbox and shows the "
        "results or the traceback; submitting runs the hidden unit tests and ends the "
        "episode. The score is the fraction of hidden tests passed."
    )
    action_help: ClassVar[str] = (
        "define followed by a ```python fenced block with your code (replaces the previous "
        "definition and runs the examples) | submit (runs the hidden tests, ends the episode)"
    )
    action_verbs: ClassVar[tuple[str, ...]] = ("define", "submit")
    #: How the CodeAct agent exposes the actions as Python functions (see ``palaestra.agent``).
    codeact_functions: ClassVar[dict[str, tuple[str, str]]] = {
        "define": (
            "define\n```python\n{}\n```",
            "define(code: str)  # makes `code` (source text) your solution and runs the examples",
        ),
        "submit": ("submit", "submit()  # runs the hidden tests and ends the episode"),
    }

    def __init__(
        self,
        env_id: str | None = None,
        *,
        sandbox: str = "auto",
        allow_unsafe: bool = False,
        case_timeout: float = 1.0,
    ) -> None:
        super().__init__(env_id)
        self.sandbox_backend = sandbox
        self.allow_unsafe = allow_unsafe
        self.case_timeout = case_timeout
        self.state: dict[str, Any] = self._fresh()
        self._sandbox: Any = None  # palaestra.sandbox.Sandbox, imported lazily
        self._cache: OrderedDict[tuple[str, str], RunResult] = OrderedDict()
        self._raw_action = ""

    @staticmethod
    def _fresh() -> dict[str, Any]:
        return {"code": None, "passed": 0, "done": False, "solved": False}

    # ---- tasks ----------------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        if params:
            raise ValueError(f"code-v1 takes no generator parameters, got {sorted(params)}")
        problem, expected = _generate(self.env_id, seed, split, difficulty)
        visible = json.loads(expected)[0]
        lines = [
            f"Write a Python function `{problem.name}{problem.signature}` that "
            f"{problem.description}.",
            "Examples:",
            *(
                f"  {_repr_call(problem.name, a)} == {v!r}"
                for a, v in zip(problem.visible, visible, strict=True)
            ),
            f"Your function is checked against {len(problem.hidden)} hidden tests.",
        ]
        return self._new_task(seed, split, difficulty, {}, "\n".join(lines))

    def _problem(self) -> tuple[Problem, list[Any], list[Any]]:
        task = self.task
        if task is None:
            raise RuntimeError("no task: call reset(task) first")
        problem, expected = _generate(self.env_id, task.seed, task.split, task.difficulty)
        visible, hidden = json.loads(expected)
        return problem, visible, hidden

    # ---- episode -----------------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        self.state = self._fresh()
        return f"{task.instruction}\n\nActions: {self.action_help}"

    def step(self, action: str) -> Observation:
        # The base class collapses whitespace before ``_step``; code needs its newlines.
        self._raw_action = action
        return super().step(action)

    def _step(self, action: str) -> Observation:
        verb = action.split(" ", 1)[0].lower()
        if verb == "submit":
            if action.lower() != "submit":
                return self.reject(
                    "submit takes nothing after it: write just `submit`.", "malformed"
                )
            return self._submit()
        if _DEFINE.match(action):
            raw = self._raw_action.strip()
            code = self._extract(raw[len("define") :])
            if not code.strip():
                return self.reject(
                    "define needs code: write `define` and then a ```python fenced block "
                    "holding your function.",
                    "malformed",
                )
            return self._define(code)
        return self.reject(f"Unknown action {action[:40]!r}. {self._grammar_hint()}", "malformed")

    @staticmethod
    def _extract(rest: str) -> str:
        m = _FENCE.search(rest)
        if m is not None:
            return m.group(1)
        rest = rest.strip()
        if rest.startswith("[") and rest.endswith("]"):
            rest = rest[1:-1]
        return rest

    def _define(self, code: str) -> Observation:
        problem, visible, hidden = self._problem()
        run = self._run(code, [*problem.visible, *problem.hidden])
        self.state["code"] = code
        if run.define_error is not None:
            self.state["passed"] = 0
            return Observation(text=f"Your code failed:\n{run.define_error.strip()}")
        shown, rest = run.cases[: len(visible)], run.cases[len(visible) :]
        self.state["passed"] = sum(
            r.error is None and same(r.value, h) for r, h in zip(rest, hidden, strict=True)
        )
        fails: list[str] = []
        for args, r, want in zip(problem.visible, shown, visible, strict=True):
            call = _repr_call(problem.name, args)
            if r.error is not None:
                fails.append(f"{call} raised:\n{r.error.strip()}")
            elif not same(r.value, want):
                fails.append(f"{call} returned {r.value!r}, expected {want!r}.")
        ok = len(visible) - len(fails)
        lines = [f"Defined {problem.name}. Examples passed: {ok} of {len(visible)}."]
        lines.extend(fails[:_SHOW_FAILS])
        if run.printed.strip():
            lines.append(f"Printed output:\n{run.printed.strip()}")
        if not fails:
            lines.append("Submit when you are confident it handles the hidden tests too.")
        return Observation(text="\n".join(lines))

    def _submit(self) -> Observation:
        if self.state["code"] is None:
            return self.reject(
                "Nothing to submit yet: define your function first (define and a ```python block).",
                "invalid_action",
            )
        _, _, hidden = self._problem()
        passed: int = self.state["passed"]
        solved = passed == len(hidden)
        self.state["done"], self.state["solved"] = True, solved
        verdict = "All hidden tests pass." if solved else "Some hidden tests fail."
        return Observation(
            text=f"Submitted. Hidden tests passed: {passed} of {len(hidden)}. {verdict}",
            reward=passed / len(hidden),
            terminated=True,
            info={"success": solved, "tests_passed": passed, "tests_total": len(hidden)},
        )

    def _run(self, code: str, cases: list[list[Any]]) -> RunResult:
        task = self.task
        assert task is not None
        key = (task.task_id, code)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        problem = self._problem()[0]
        result = run_cases(
            self._ensure_sandbox(), code, problem.name, cases, case_timeout=self.case_timeout
        )
        self._cache[key] = result
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    def _ensure_sandbox(self) -> Any:
        from palaestra.sandbox import SandboxError, open_sandbox

        if self._sandbox is not None and not self._sandbox.healthy():
            self._close()
        if self._sandbox is None:
            try:
                box = open_sandbox(self.sandbox_backend, allow_unsafe=self.allow_unsafe)
                box.start()
            except SandboxError as e:
                raise EnvError(f"sandbox_unavailable: cannot start the code sandbox: {e}") from e
            self._sandbox = box
        return self._sandbox

    def _close(self) -> None:
        if self._sandbox is not None:
            box, self._sandbox = self._sandbox, None
            box.close()

    # ---- oracle and measures -------------------------------------------------------------

    def expert(self) -> str:
        problem, _, hidden = self._problem()
        if self.state["code"] is not None and self.state["passed"] == len(hidden):
            return "submit"
        return define_action(problem.reference)

    def progress(self) -> float:
        if self.task is None:
            return 0.0
        return self.state["passed"] / len(self._problem()[2])

    def available_actions(self) -> list[str]:
        if self.task is None or self.state["done"]:
            return []
        problem, visible, _ = self._problem()
        head = problem.reference.split("\n", 1)[0] + "\n"  # "def name(a, b):"
        first = head[head.index("(") + 1 :].split(",")[0].split(")")[0].strip()
        actions = [
            define_action(f"{head}    return {visible[0]!r}"),
            define_action(f"{head}    return {first}"),
        ]
        if self.state["code"] is not None:
            actions.append("submit")
        return actions

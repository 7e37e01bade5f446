"""Tests of the ``code-v1`` family: task generation, sandboxed checking, feedback, errors."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator

import pytest

from palaestra.agent import parse_react
from palaestra.env import DIFFICULTIES, SPLITS, Difficulty, EnvError, Environment, Task, make
from palaestra.env.families.code import CodeEnv, define_action
from palaestra.env.families.code._env import _generate  # pyright: ignore[reportPrivateUsage]
from palaestra.env.families.code._problems import HELDOUT, TEMPLATES, Template
from palaestra.env.families.code._runner import same

ID = "code-v1"


@pytest.fixture(scope="module")
def sandboxed() -> None:
    """Skip when no isolating sandbox backend works here (model code never runs unsandboxed)."""
    from palaestra.sandbox import available_backends

    usable = [b for b, why in available_backends().items() if why is None and b != "unsafe-local"]
    if not usable:
        pytest.skip(f"no isolating sandbox backend on this machine: {available_backends()}")


@pytest.fixture
def env(sandboxed: None) -> Iterator[Environment]:
    e = make(ID, max_episode_steps=0, case_timeout=0.3)
    yield e
    e.close()


def _reference(task: Task) -> str:
    return _generate(ID, task.seed, task.split, task.difficulty)[0].reference


def _name(task: Task) -> str:
    m = re.search(r"`(\w+)\(", task.instruction)
    assert m is not None
    return m.group(1)


# ---- tasks (no sandbox needed) ----------------------------------------------------------


def _names(pool: dict[Difficulty, tuple[Template, ...]], difficulty: Difficulty) -> set[str]:
    """Every function name the templates of ``pool`` produce."""
    return {t(random.Random(i), 3).name for t in pool[difficulty] for i in range(40)}


def test_tasks_are_deterministic_and_heldout_uses_its_own_templates() -> None:
    env = CodeEnv()
    for difficulty in DIFFICULTIES:
        assert not _names(TEMPLATES, difficulty) & _names(HELDOUT, difficulty)
        for split in SPLITS:
            pool = HELDOUT if split == "heldout" else TEMPLATES
            seen: set[str] = set()
            for seed in range(12):
                task = env.make_task(seed, split, difficulty)
                assert task == CodeEnv().make_task(seed, split, difficulty)
                seen.add(_name(task))
            assert seen <= _names(pool, difficulty) and len(seen) >= 2


def test_instruction_shows_signature_examples_and_test_count() -> None:
    task = CodeEnv().make_task(0, "train", "hard")
    problem, expected = _generate(ID, 0, "train", "hard")
    assert f"`{problem.name}{problem.signature}`" in task.instruction
    assert "Examples:" in task.instruction and "10 hidden tests" in task.instruction
    # each visible example is printed with the reference's output
    assert task.instruction.count(f"  {problem.name}(") == len(problem.visible) >= 2
    assert expected  # JSON of the expected outputs


def test_generator_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="no generator parameters"):
        CodeEnv().make_task(0, "train", "easy", size=3)


def test_output_comparison_is_strict_on_bools_and_lenient_on_numbers() -> None:
    assert same([1, {"a": [2]}], [1, {"a": [2.0]}])
    assert not same(True, 1) and not same([1], [True]) and not same({"a": 1}, {"b": 1})
    assert not same("1", 1) and not same([1, 2], [1])


def test_react_parser_carries_a_define_action_verbatim() -> None:
    code = "def f(x):\n    if x:\n        return [x]\n    return []"
    action = define_action(code)
    parsed = parse_react(f"Thought: write it\nAction: {action}\nObservation: ignored")
    assert parsed.action == action and parsed.thought == "write it"


def test_actions_that_do_not_parse_are_malformed_without_a_sandbox() -> None:
    env = make(ID)
    task = env.make_task(0)
    env.reset(task)
    for bad in ("define", "define   ", "submit now", "xyzzy", "defined something"):
        obs = env.step(bad)
        assert obs.info["invalid_kind"] == "malformed", bad
    obs = env.step("submit")
    assert obs.info["invalid_kind"] == "invalid_action" and "define" in obs.text
    assert env.available_actions() and "submit" not in env.available_actions()


def test_a_sandbox_that_cannot_start_is_an_env_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import palaestra.sandbox
    from palaestra.sandbox import NoSandboxBackend

    def none_works(*args: object, **kwargs: object) -> object:
        raise NoSandboxBackend("no backend works here: install bubblewrap")

    monkeypatch.setattr(palaestra.sandbox, "open_sandbox", none_works)
    env = make(ID)
    env.reset(env.make_task(0))
    with pytest.raises(EnvError, match=r"sandbox_unavailable.*install bubblewrap"):
        env.step(env.expert())


# ---- running code (sandboxed) ---------------------------------------------------------------


def test_expert_solves_every_split_and_difficulty(env: Environment) -> None:
    for split in SPLITS:
        for difficulty in DIFFICULTIES:
            task = env.make_task(3, split, difficulty)
            env.reset(task)
            obs = env.step(env.expert())
            assert env.progress() == 1.0 and not obs.done and "Examples passed: " in obs.text
            assert env.expert() == "submit" and "submit" in env.available_actions()
            obs = env.step("submit")
            assert obs.terminated and obs.reward == 1.0 and obs.info["success"]


def test_partial_solution_gets_the_fraction_of_hidden_tests(env: Environment) -> None:
    task = env.make_task(1, "test", "medium")
    name = _name(task)
    # correct except on the first hidden test (the 4th call: 3 visible examples run first)
    code = _reference(task) + (
        f"\n_ref, _n = {name}, [0]\n"
        f"def {name}(*args):\n"
        "    _n[0] += 1\n"
        "    return None if _n[0] == 4 else _ref(*args)\n"
    )
    env.reset(task)
    obs = env.step(define_action(code))
    assert "Examples passed: 3 of 3" in obs.text and env.progress() == 7 / 8
    obs = env.step("submit")
    assert obs.reward == pytest.approx(7 / 8) and obs.info["success"] is False
    assert obs.info["tests_passed"] == 7 and "7 of 8" in obs.text


def test_bad_code_is_feedback_not_an_invalid_action(env: Environment) -> None:
    task = env.make_task(0, "train", "easy")
    name = _name(task)
    env.reset(task)
    obs = env.step(define_action(f"def {name}(x:\n    return 1"))
    assert "SyntaxError" in obs.text and not obs.info["invalid"] and env.progress() == 0.0
    obs = env.step(define_action(f"def {name}(*a):\n    print('hello there')\n    return 1 / 0"))
    assert "ZeroDivisionError" in obs.text and 'File "<solution>"' in obs.text
    assert "hello there" in obs.text and "harness" not in obs.text.lower()
    obs = env.step(define_action("def something_else(x):\n    return x"))
    assert f"does not define a function named '{name}'" in obs.text
    obs = env.step(define_action("import os\nos._exit(3)"))
    assert "ended early" in obs.text and "exit code 3" in obs.text
    obs = env.step("submit")
    assert obs.terminated and obs.reward == 0.0 and obs.info["success"] is False


def test_an_endless_loop_times_out_per_case(env: Environment) -> None:
    task = env.make_task(0, "train", "easy")
    env.reset(task)
    t0 = time.perf_counter()
    obs = env.step(define_action(f"def {_name(task)}(*a):\n    while True:\n        pass"))
    assert "timed out after 0.3s" in obs.text
    assert time.perf_counter() - t0 < 20  # 9 cases x 0.3 s, plus start-up under load
    # the episode goes on: the expert still solves it
    assert env.step(env.expert()).info["progress"] == 1.0


def test_a_one_line_define_without_fence_is_accepted(env: Environment) -> None:
    task = env.make_task(2, "train", "easy")
    ref = _reference(task)
    env.reset(task)
    one_line = ref.replace("\n    ", " ", 1).strip()
    assert "\n" not in one_line
    obs = env.step(f"define {one_line}")
    assert env.progress() == 1.0, obs.text


def test_a_dying_sandbox_is_an_env_error(env: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    from palaestra.sandbox import SandboxUnavailable

    task = env.make_task(0, "train", "easy")
    env.reset(task)
    env.step(env.expert())  # starts the sandbox
    box = env.unwrapped._sandbox  # type: ignore[attr-defined]

    def dead(*args: object, **kwargs: object) -> object:
        raise SandboxUnavailable("the interpreter was killed")

    monkeypatch.setattr(box, "exec", dead)
    with pytest.raises(EnvError, match="sandbox_unavailable"):
        env.step(define_action(_reference(task) + "\n# changed"))


def test_close_releases_the_sandbox_and_a_later_episode_reopens_it(env: Environment) -> None:
    task = env.make_task(4, "test", "hard")
    env.reset(task)
    env.step(env.expert())
    inner = env.unwrapped
    assert inner._sandbox is not None  # type: ignore[attr-defined]
    env.close()
    assert inner._sandbox is None  # type: ignore[attr-defined]
    env.reset(task)
    env.step(define_action(_reference(task) + "\n# again"))
    assert env.progress() == 1.0


def test_snapshot_restore_returns_to_the_defined_code(env: Environment) -> None:
    task = env.make_task(5, "train", "medium")
    env.reset(task)
    env.step(env.expert())
    snap = env.snapshot()
    env.step(define_action("def nope(): pass"))
    assert env.progress() == 0.0
    env.restore(snap)
    assert env.progress() == 1.0 and env.step("submit").info["success"]

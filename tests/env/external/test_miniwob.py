"""Tests of the MiniWoB++ adapter (``miniwob/*-v1``): parser, text view, missing extra, and
(integration tier: the ``miniwob`` wheel, Playwright and Debian's ``chromium``) the contract,
the experts, a random agent and the step latency in a real headless Chromium.

The integration tier runs the experts on a representative subset (a jQuery UI dialog, a
select list, ...); ``-m slow`` on every registered id. ``check_env`` runs in
tests/env/test_conformance.py (the stateful form and checkbox tasks in the integration
tier, every task with ``-m slow``).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import pytest

from palaestra.env import Environment, make, registry
from palaestra.env.external.miniwob import TASKS
from palaestra.env.external.miniwob._actions import Action, ActionParseError, parse_action
from palaestra.env.external.miniwob._experts import EXPERTS
from palaestra.env.external.miniwob._page import Node, render_page

IDS = sorted(i for i in registry() if i.startswith("miniwob/"))
EXPERT_SUBSET = [  # test_conformance.py's check_env runs the experts of the form tasks
    "miniwob/click-link-v1",
    "miniwob/click-dialog-2-v1",
    "miniwob/enter-text-2-v1",
    "miniwob/choose-list-v1",
]


# ---- default tier: no browser --------------------------------------------------------


def test_registered_without_the_extra() -> None:
    assert sorted(f"miniwob/{t}-v1" for t in TASKS) == IDS
    assert set(TASKS) == set(EXPERTS)
    for i in IDS:
        spec = registry()[i]
        assert spec.source == "palaestra[miniwob]"
        assert spec.max_episode_steps and spec.max_episode_steps >= 10


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("click(12)", Action("click", 12)),
        ("click('12')", Action("click", 12)),
        ("click([12])", Action("click", 12)),
        ("Click 12", Action("click", 12)),
        ('type(3, "Bobby Tables")', Action("type", 3, "Bobby Tables")),
        ("fill('3', \"it's\")", Action("type", 3, "it's")),
        ('fill(3, "say \\"hi\\"")', Action("type", 3, 'say "hi"')),
        ("type(3, plain words)", Action("type", 3, "plain words")),
        ('select(7, "Canada")', Action("select", 7, "Canada")),
        ("select_option('7', 'Canada')", Action("select", 7, "Canada")),
        ('press("Enter")', Action("press", None, "Enter")),
        ("press(Tab)", Action("press", None, "Tab")),
        ('press(4, "Control+a")', Action("press", 4, "Control+a")),
        ("focus(2);", Action("focus", 2)),
        ("dblclick(5)", Action("dblclick", 5)),
    ],
)
def test_parse_action(raw: str, expected: Action) -> None:
    assert parse_action(raw) == expected


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("jump(3)", "the verbs are"),
        ("click()", "element id"),
        ("click(submit)", "element id"),
        ("click(3, 4)", "only an element id"),
        ("type(3)", "needs a text"),
        ("press()", "needs a key"),
        ("xyzzy plugh", "unknown action"),
    ],
)
def test_parse_errors_say_how_actions_look(raw: str, hint: str) -> None:
    with pytest.raises(ActionParseError, match=hint):
        parse_action(raw)


def test_page_listing_renders_ids_states_and_loose_text() -> None:
    nodes = [
        Node.from_js({"pid": 1, "depth": 0, "role": "label", "name": "Username"}),
        Node.from_js(
            {
                "pid": 2,
                "depth": 1,
                "role": "textbox",
                "name": "",
                "input_type": "password",
                "value": 'a"b',
                "focused": True,
            }
        ),
        Node.from_js({"pid": None, "depth": 0, "role": "text", "name": "loose words"}),
        Node.from_js({"pid": 3, "depth": 0, "role": "checkbox", "name": "x", "checked": False}),
        Node.from_js(
            {
                "pid": 4,
                "depth": 0,
                "role": "combobox",
                "name": "",
                "value": "b",
                "options": ["a", "b"],
            }
        ),
    ]
    assert render_page(nodes).splitlines() == [
        '[1] label "Username"',
        '  [2] textbox password value="a\\"b" focused',
        'text "loose words"',
        '[3] checkbox "x" unchecked',
        '[4] combobox value="b" options=["a", "b"]',
    ]
    assert render_page([]) == "(the page shows nothing)"


def test_experts_read_the_listing() -> None:
    nodes = [
        Node(pid=1, depth=0, role="label", name="ab"),
        Node(pid=2, depth=1, role="checkbox", name="ab", checked=True),
        Node(pid=3, depth=0, role="label", name="cd"),
        Node(pid=4, depth=1, role="checkbox", name="cd", checked=False),
        Node(pid=5, depth=0, role="button", name="Submit"),
    ]
    expert = EXPERTS["click-checkboxes"]
    assert expert("Select cd and click Submit.", nodes) == "click(2)"  # untick the wrong one first
    assert expert("Select ab, cd and click Submit.", nodes) == "click(4)"
    assert expert("Select ab and click Submit.", nodes) == "click(5)"
    assert expert("Select nothing and click Submit.", nodes) == "click(2)"


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)  # `import playwright...` now fails
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[miniwob\]"'):
        make("miniwob/click-button-v1")


def test_missing_miniwob_wheel_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "miniwob", None)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[miniwob\]"'):
        make("miniwob/click-button-v1")


def test_missing_chromium_names_the_apt_package(tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api")
    if find_spec("miniwob") is None:
        pytest.skip('needs pip install "palaestra[miniwob]"')
    with pytest.raises(ImportError, match=r"apt-get install -y chromium"):
        make("miniwob/click-button-v1", executable=str(tmp_path / "no-chromium"))


def test_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        make("miniwob/click-button-v1", task="drag-cube")


# ---- integration tier: a real headless Chromium --------------------------------------

needs_extra = pytest.mark.skipif(
    find_spec("miniwob") is None
    or find_spec("playwright") is None
    or not Path("/usr/bin/chromium").exists(),
    reason='needs pip install "palaestra[miniwob]" and apt-get install -y chromium',
)


@pytest.fixture(scope="module")
def login_env() -> Iterator[Environment]:
    env = make("miniwob/login-user-v1")
    yield env
    env.close()


@pytest.mark.integration
@needs_extra
@pytest.mark.parametrize("env_id", EXPERT_SUBSET)
def test_expert_solves_tasks(env_id: str) -> None:
    env = make(env_id)
    try:
        for split, seed in (("train", 3), ("test", 4), ("heldout", 5)):
            task = env.make_task(seed, split)
            obs = env.reset(task)
            assert task.instruction in obs.text
            while not obs.done:
                obs = env.step(env.expert())
            assert obs.terminated and obs.info["success"] and obs.reward == 1.0, obs.text
            assert obs.info["raw_reward"] > 0 and env.progress() == 1.0
    finally:
        env.close()


@pytest.mark.integration
@needs_extra
def test_splits_and_seeds_give_distinct_reproducible_episodes(login_env: Environment) -> None:
    tasks = [login_env.make_task(s, split) for split in ("train", "test") for s in range(4)]
    assert len({t.instruction for t in tasks}) >= 6  # a few collisions are possible, not many
    first = login_env.reset(tasks[0]).text
    login_env.reset(tasks[1])
    assert login_env.reset(tasks[0]).text == first


@pytest.mark.integration
@needs_extra
def test_invalid_actions_are_observations(login_env: Environment) -> None:
    login_env.reset(login_env.make_task(0))
    obs = login_env.step("click(99)")
    assert obs.info["invalid_kind"] == "invalid_action" and "no element [99]" in obs.text
    obs = login_env.step("select(2, 'x')")
    assert obs.info["invalid_kind"] == "invalid_action" and "not a list" in obs.text
    obs = login_env.step("type(5, 'x')")  # [5] is the Login button
    assert obs.info["invalid_kind"] == "invalid_action" and "not a text field" in obs.text
    obs = login_env.step('press("NoSuchKey")')
    assert obs.info["invalid_kind"] == "invalid_action" and "NoSuchKey" in obs.text
    obs = login_env.step("walk north")
    assert obs.info["invalid_kind"] == "malformed" and "click(id)" in obs.text
    assert not obs.done and obs.info["invalid_count"] == 5


@pytest.mark.integration
@needs_extra
def test_wrong_answer_ends_the_episode_as_a_failure(login_env: Environment) -> None:
    login_env.reset(login_env.make_task(0))
    obs = login_env.step('type(2, "nobody")')
    assert '[2] textbox value="nobody" focused' in obs.text
    obs = login_env.step("click(5)")
    assert obs.terminated and not obs.info["success"] and obs.reward == 0.0
    assert obs.info["raw_reward"] == -1.0 and login_env.progress() == 0.0


@pytest.mark.integration
@needs_extra
def test_keyboard_actions_reach_the_page(login_env: Environment) -> None:
    task = login_env.make_task(1)
    login_env.reset(task)
    login_env.step("focus(2)")
    obs = login_env.step('press("a")')
    assert '[2] textbox value="a" focused' in obs.text
    obs = login_env.step('press(2, "Backspace")')
    assert '[2] textbox value="" focused' in obs.text
    obs = login_env.step("clear(2)")
    assert not obs.info["invalid"]


@pytest.mark.integration
@needs_extra
def test_usable_inside_an_asyncio_loop_and_from_other_threads(login_env: Environment) -> None:
    # Playwright's sync API refuses a running event loop and is bound to one thread; the
    # rollout engine calls environments from its loop or from a thread pool.
    task = login_env.make_task(2)

    async def in_loop() -> str:
        return login_env.reset(task).text

    text = asyncio.run(in_loop())
    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(lambda: login_env.reset(task).text).result() == text
        assert not pool.submit(lambda: login_env.step(login_env.expert())).result().info["invalid"]


@pytest.mark.integration
@needs_extra
def test_random_agent_and_step_latency() -> None:
    rng = random.Random(0)
    env = make("miniwob/click-checkboxes-v1")
    latencies: list[float] = []
    outcomes: list[bool] = []
    try:
        for seed in range(4):
            obs = env.reset(env.make_task(seed))
            while not obs.done:
                t0 = time.perf_counter()
                obs = env.step(rng.choice(env.available_actions()))
                latencies.append(time.perf_counter() - t0)
                assert not obs.info["invalid"], obs.text
            outcomes.append(bool(obs.info.get("success")))
    finally:
        env.close()
    assert len(outcomes) == 4
    # A generous bound: ~30 ms idle, several times that on a loaded 2-core machine.
    assert statistics.median(latencies) < 2.0


@pytest.mark.integration
@needs_extra
def test_reload_and_relaunch_keep_episodes_and_a_dead_browser_is_an_env_error() -> None:
    from palaestra.env import EnvError

    env = make("miniwob/focus-text-v1", reload_every=2)
    task = env.make_task(0)
    first = env.reset(task).text
    assert [env.reset(task).text for _ in range(2)] == [first, first]  # the 2nd one reloaded
    env.close()
    assert env.reset(task).text == first  # launched again, lazily
    browser = env.unwrapped._browser  # type: ignore[attr-defined]
    browser.call(lambda: browser._browser.close())  # the browser dies under us
    with pytest.raises(EnvError):
        env.step("click(1)")
    env.close()


# ---- slow tier: every registered id ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
@needs_extra
@pytest.mark.parametrize("env_id", IDS)
def test_expert_solves_all(env_id: str) -> None:
    env = make(env_id)
    try:
        for seed in range(10):
            obs = env.reset(env.make_task(seed, "test", "hard"))
            while not obs.done:
                obs = env.step(env.expert())
            assert obs.info["success"], (seed, obs.text)
    finally:
        env.close()

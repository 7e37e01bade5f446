"""The AgentGym env-server client against a stand-in that follows AgentGym's protocol.

``_agentgym_server.py`` serves all five AgentGym dialects (WebShop, ALFWorld,
SciWorld, BabyAI, TextCraft) with our ``house-v1`` family as the game, in a
subprocess on loopback. Since the servers have no oracle, episodes are solved
by a local ``house-v1`` on the same seed whose expert picks the actions.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from palaestra.env import EnvError, check_env, make, registry
from palaestra.env.external.agentgym import AGENTGYM_IDS
from palaestra.env.external.agentgym._env import AgentGymEnv, url_env_var

HERE = Path(__file__).parent
DIALECTS = ("webshop", "alfworld", "sciworld", "babyai", "textcraft")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandIn:
    """``_agentgym_server.py`` in a subprocess (needs the [web] extra: FastAPI, uvicorn)."""

    def __init__(self) -> None:
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_agentgym_server.py"), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"the AgentGym stand-in exited:\n{out}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the AgentGym stand-in did not start within 60 s")

    def base(self, dialect: str) -> str:
        return f"{self.url}/{dialect}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.stop()


def _agentgym(server: StandIn, dialect: str, **kwargs: object) -> AgentGymEnv:
    env = make(f"agentgym/{dialect}-v1", base_url=server.base(dialect), **kwargs)
    assert isinstance(env.unwrapped, AgentGymEnv)
    return env  # type: ignore[return-value]


def _oracle_action(dialect: str, action: str) -> str:
    return f"click[{action}]" if dialect == "webshop" else action


# ---- registration and configuration (no server needed) ------------------------------


def test_ids_are_registered_as_external() -> None:
    reg = registry()
    for env_id in AGENTGYM_IDS:
        assert env_id in reg
        assert reg[env_id].source != "palaestra"  # not iterated by the built-in conformance suite
        assert reg[env_id].load().description  # the class imports without a server


def test_missing_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(url_env_var("webshop"), raising=False)
    with pytest.raises(ValueError, match="PALAESTRA_AGENTGYM_WEBSHOP_URL") as e:
        make("agentgym/webshop-v1")
    assert "base_url" in str(e.value) and "webshop --port" in str(e.value)


def test_url_from_env_var_and_no_request_before_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on this port: make() and make_task() must not touch the server.
    monkeypatch.setenv(url_env_var("babyai"), f"http://127.0.0.1:{_free_port()}")
    env = make("agentgym/babyai-v1")
    task = env.make_task(7, "test")
    assert "task 7" in task.instruction and task.env_id == "agentgym/babyai-v1"
    with pytest.raises(EnvError, match="lost the environment server"):
        env.reset(task)
    env.close()


def test_split_ranges_map_seeds_to_task_indices() -> None:
    env = AgentGymEnv("http://127.0.0.1:9", dialect="sciworld", split_ranges={"test": [100, 110]})
    assert env.data_index(3, "train") == 3  # no range: the seed is the index
    assert env.data_index(3, "test") == 103
    with pytest.raises(ValueError, match=r"seed 10 is outside split 'test'"):
        env.make_task(10, "test")
    with pytest.raises(ValueError, match="split_ranges"):
        AgentGymEnv("http://x:1", dialect="sciworld", split_ranges={"dev": [0, 1]})
    with pytest.raises(ValueError, match="take no params"):
        env.make_task(0, "train", "easy", level=2)
    with pytest.raises(ValueError, match="dialect must be one of"):
        AgentGymEnv("http://x:1", dialect="minecraft")
    with pytest.raises(NotImplementedError, match="no expert"):
        env.expert()


# ---- against the stand-in --------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_check_env_passes(server: StandIn, dialect: str) -> None:
    # AgentGym servers have no oracle (has_expert = False): check_env skips only that check.
    env = _agentgym(server, dialect)
    assert not env.unwrapped.has_expert
    with pytest.raises(NotImplementedError, match="no expert"):
        env.reset(env.make_task(0, "test", "easy"))
        env.expert()
    report = check_env(lambda: _agentgym(server, dialect), seeds=(0, 1), difficulties=("easy",))
    assert report.tasks_checked == 2 and report.ok


@pytest.mark.parametrize("dialect", DIALECTS)
def test_oracle_solves_tasks_with_score_as_progress(server: StandIn, dialect: str) -> None:
    # The stand-in serves house-v1, whose fair expert explores: more steps than WebShop's 10.
    env = _agentgym(server, dialect, max_episode_steps=50)
    try:
        for seed in (0, 1, 2):
            local = make("house-v1", max_episode_steps=0)
            local.reset(local.make_task(seed, "train", "easy"))
            first = env.reset(env.make_task(seed))
            assert env.task is not None and env.task.instruction in first.text
            assert env.progress() == 0.0
            total = 0.0
            for _ in range(50):
                action = local.expert()
                local.step(action)
                obs = env.step(_oracle_action(dialect, action))
                assert not obs.info["invalid"], obs.text
                total += obs.reward
                if obs.done:
                    break
            assert obs.terminated and obs.info["success"] is True
            assert env.progress() == 1.0 and total == pytest.approx(1.0)
    finally:
        env.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_random_agent_episodes(server: StandIn, dialect: str) -> None:
    env = _agentgym(server, dialect)  # with the registered step limit
    rng = random.Random(0)
    latencies: list[float] = []
    try:
        for seed in (3, 4):
            env.reset(env.make_task(seed))
            while True:
                actions = env.available_actions()
                assert actions
                t0 = time.perf_counter()
                obs = env.step(rng.choice(actions))
                latencies.append(time.perf_counter() - t0)
                assert 0.0 <= obs.reward <= 1.0 and 0.0 <= env.progress() <= 1.0
                if obs.done:
                    break
            assert obs.truncated or obs.terminated
    finally:
        env.close()
    print(f"{dialect}: median step {1000 * statistics.median(latencies):.2f} ms")


def test_invalid_actions_are_feedback_and_not_sent(server: StandIn) -> None:
    env = _agentgym(server, "babyai")
    env.reset(env.make_task(0))
    for bad in ("fly to the moon", "GO TO", "click[go to desk 1]"):
        obs = env.step(bad)
        assert obs.info["invalid"] and not obs.done
        assert "Available actions:" in obs.text
    # BabyAI's server counts every step it receives; rejected actions never reached it.
    listed = env.available_actions()
    obs = env.step(listed[0].upper())  # matched case-insensitively, sent as listed
    assert not obs.info["invalid"] and obs.info["server_score"] == pytest.approx(0.0)
    obs = env.step("check available actions")  # BabyAI accepts it without listing it
    assert not obs.info["invalid"] and "You can take the following actions" in obs.text
    env.close()


def test_webshop_search_and_click_rules(server: StandIn) -> None:
    env = _agentgym(server, "webshop")
    env.reset(env.make_task(0))
    listed = env.available_actions()
    assert listed[0].startswith("search[") and "click[search]" not in listed
    assert not env.step("search[red shirt]").info["invalid"]
    assert env.step("search[]").info["invalid"]
    assert env.step("click[search]").info["invalid"]
    assert env.step("buy the thing").info["invalid_kind"] == "invalid_action"
    click = next(a for a in listed if a.startswith("click["))
    assert not env.step(click.upper().replace("CLICK[", "click[")).info["invalid"]
    env.close()


@pytest.mark.parametrize("dialect", ["babyai", "webshop", "alfworld"])
def test_server_side_errors_are_env_errors(server: StandIn, dialect: str) -> None:
    env = _agentgym(server, dialect)
    # The stand-in has 1000 tasks: AgentGym servers answer {"error"} (WebShop: HTTP 500).
    with pytest.raises(EnvError, match=r"error|HTTP 500"):
        env.reset(env.make_task(5000))
    env.close()


def test_wrong_dialect_names_the_server_to_use(server: StandIn) -> None:
    env = make("agentgym/webshop-v1", base_url=server.base("babyai"))
    with pytest.raises(EnvError, match=r"HTTP 4\d\d.*AgentGym WebShop server"):
        env.reset(env.make_task(0))
    env.close()


def test_close_frees_the_server_instance(server: StandIn) -> None:
    env = _agentgym(server, "webshop")
    env.reset(env.make_task(0))
    key = env.unwrapped._server_id  # type: ignore[attr-defined]
    env.close()
    req = urllib.request.Request(
        f"{server.base('webshop')}/close",
        data=json.dumps({"env_idx": key}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read()) == {"closed": False}  # already gone


def test_server_killed_mid_episode_is_an_env_error() -> None:
    own = StandIn()
    try:
        env = make("agentgym/alfworld-v1", base_url=own.base("alfworld"))
        env.reset(env.make_task(0))
        env.step(env.available_actions()[0])
        own.proc.kill()
        own.proc.wait(10)
        with pytest.raises(EnvError, match="lost the environment server"):
            env.step(env.available_actions()[0])
        env.close()  # best effort, no error
    finally:
        own.stop()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_hung_server_is_an_env_error() -> None:
    own = StandIn()
    try:
        env = make("agentgym/sciworld-v1", base_url=own.base("sciworld"), timeout=1.0)
        env.reset(env.make_task(0))
        os.kill(own.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(EnvError, match="no answer within 1 s"):
            env.step("look around")
        assert time.monotonic() - t0 < 10
        os.kill(own.proc.pid, signal.SIGCONT)
        env.close()
    finally:
        own.stop()

"""The HTTP environment server and RemoteEnvironment, against real uvicorn servers on loopback.

Most tests run the server in a thread of this process (so environments with
injected faults can be registered directly); there the event loop is not in
the main thread, so calls run in "thread" isolation. The signal-isolation
mode and the crash test run ``python -m palaestra serve-env`` in a
subprocess, which imports the fault environment from this file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_harness import RELEASE, ThreadServer, free_port

from palaestra.env import (
    EnvError,
    Observation,
    ResetNeeded,
    ToyEnv,
    check_env,
    make,
    register,
)
from palaestra.env.server import RemoteEnvironment, RemoteSnapshot

TOY = "palaestra.env._toy:ToyEnv"
FAULT = "test_server:fault_toy"  # importable in the subprocess with tests/env on PYTHONPATH


def fault_toy() -> ToyEnv:
    """ToyEnv whose special actions hang, crash, or report an infrastructure failure."""

    def on_step(action: str) -> None:
        if action == "hang":
            RELEASE.wait(30)
        elif action == "slow":
            time.sleep(2)
        elif action == "crash":
            raise RuntimeError("simulator exploded")
        elif action == "envfail":
            raise EnvError("backend lost its database")

    return ToyEnv(on_step=on_step)


@pytest.fixture(scope="module", autouse=True)
def _toy_envs_registered() -> Iterator[None]:
    """Register the toy envs for this module only: the registry is process-global."""
    import palaestra.env._registry as reg

    saved = dict(reg.registry())
    register("toy-v1", TOY, override=True)
    register("toy-fault-v1", fault_toy, override=True)
    yield
    reg._REGISTRY.clear()  # pyright: ignore[reportPrivateUsage]
    reg._REGISTRY.update(saved)  # pyright: ignore[reportPrivateUsage]


def _start_subprocess(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    cmd = [sys.executable, "-m", "palaestra", "serve-env", "--port", str(port)]
    cmd += ["--register", f"toy-v1={TOY}", "--register", f"toy-fault-v1={FAULT}", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"server did not start: {err[-2000:]}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer(max_envs=16, request_timeout=0.5) as s:
        yield s


@pytest.fixture(scope="module")
def subprocess_server() -> Iterator[str]:
    proc, url = _start_subprocess("--request-timeout", "0.5", "--isolation", "signal")
    yield url
    proc.terminate()
    proc.wait(10)


def _remote(url: str, env_id: str = "toy-v1", **kw: Any) -> RemoteEnvironment:
    return RemoteEnvironment(url, env_id, timeout=10, **kw)


# ---- the contract through RemoteEnvironment -------------------------------------------


@pytest.mark.parametrize("prefetch", [True, False])
def test_remote_environment_passes_check_env(server: ThreadServer, prefetch: bool) -> None:
    report = check_env(lambda: _remote(server.url, prefetch_actions=prefetch))
    assert report.ok and report.expert_episodes == 18


def test_remote_matches_a_local_environment_step_for_step(server: ThreadServer) -> None:
    local, remote = make("toy-v1"), _remote(server.url)
    try:
        task = local.make_task(5, "test", "medium")
        assert remote.make_task(5, "test", "medium") == task
        assert remote.task is None and remote.last_observation is None
        assert remote.reset(task) == local.reset(task)
        for action in ["inc", "bogus", "dec", "inc", "inc", "inc"]:
            assert remote.available_actions() == local.available_actions()
            assert remote.expert() == local.expert()
            assert remote.step(action) == local.step(action)
            assert remote.progress() == local.progress()
        assert remote.task == task
        assert remote.last_observation == local.last_observation
        assert (remote.description, remote.action_help) == (local.description, local.action_help)
        assert remote.action_verbs == ("inc", "dec", "stop")
        info = httpx.get(f"{server.url}/envs/{remote.env_key}/info").json()
        assert info["env_id"] == "toy-v1" and info["task"]["task_id"] == task.task_id
        last = httpx.get(f"{server.url}/envs/{remote.env_key}/observation").json()
        assert Observation.model_validate(last) == local.last_observation
    finally:
        remote.close()
        local.close()


def test_snapshots_restore_state_and_are_freed_on_close(server: ThreadServer) -> None:
    env = _remote(server.url)
    other = _remote(server.url)
    try:
        env.reset(env.make_task(1, "train", "hard"))
        env.step("inc")
        snap = env.snapshot()
        assert isinstance(snap, RemoteSnapshot) and snap.env_key == env.env_key
        mid = env.step("inc")
        env.step("inc")
        env.restore(snap)
        assert env.last_observation is not None and env.last_observation.info["step"] == 1
        assert env.step("inc") == mid
        with pytest.raises(ValueError, match="this environment instance"):
            other.restore(snap)
        info = httpx.get(f"{server.url}/envs/{env.env_key}/info").json()
        assert info["snapshots"] == 1
    finally:
        env.close()
        other.close()
    gone = httpx.post(f"{server.url}/envs/{env.env_key}/restore", json={"snapshot_id": "0"})
    assert gone.status_code == 404


def test_snapshots_are_bounded_per_environment() -> None:
    with ThreadServer(max_snapshots=2) as srv:
        env = _remote(srv.url)
        env.reset(env.make_task(0))
        first = env.snapshot()
        second = env.snapshot()
        env.snapshot()
        env.restore(second)  # still kept
        with pytest.raises(EnvError, match="evicted"):
            env.restore(first)
        bad = httpx.post(f"{srv.url}/envs/{env.env_key}/restore", json={"snapshot_id": "99"})
        assert bad.status_code == 404 and bad.json()["error"] == "snapshot_not_found"
        env.close()


def test_one_environment_serialises_concurrent_requests(server: ThreadServer) -> None:
    env = _remote(server.url, max_episode_steps=0)
    task = env.make_task(0, "train", "hard")
    env.reset(task)
    url = f"{server.url}/envs/{env.env_key}/step"

    def hammer() -> None:
        with httpx.Client() as c:
            for _ in range(40):
                assert c.post(url, json={"action": "dec"}).status_code == 200

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    obs = env.step("dec")  # no step was lost or interleaved
    assert obs.info["step"] == 161 and obs.text == "You are at -161."
    env.close()


def test_keep_alive_connection_closed_by_the_server_is_replaced() -> None:
    with ThreadServer(keep_alive=0.2) as srv:
        env = _remote(srv.url)
        env.reset(env.make_task(0))
        time.sleep(0.6)  # the server drops the idle connection
        assert env.step("inc").text == "You are at 1."
        env.close()


# ---- the API surface ------------------------------------------------------------------


def test_openapi_describes_every_resource(server: ThreadServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in [
        "/health",
        "/envs",
        "/envs/{key}",
        "/envs/{key}/tasks",
        "/envs/{key}/reset",
        "/envs/{key}/step",
        "/envs/{key}/observation",
        "/envs/{key}/available_actions",
        "/envs/{key}/progress",
        "/envs/{key}/expert",
        "/envs/{key}/info",
        "/envs/{key}/snapshot",
        "/envs/{key}/restore",
    ]:
        assert path in paths, path
    step = paths["/envs/{key}/step"]["post"]
    assert step["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Step")
    assert {"Observation", "StepResult", "ErrorResponse", "CreateEnv"} <= set(
        spec["components"]["schemas"]
    )


def test_registry_listing(server: ThreadServer) -> None:
    listed = {e["id"]: e for e in httpx.get(server.url + "/envs").json()}
    assert listed["toy-v1"]["description"] == ToyEnv.description


def test_bearer_token_is_required_except_for_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PALAESTRA_ENV_TOKEN", raising=False)
    with ThreadServer(token="s3cret") as srv:
        assert httpx.get(srv.url + "/health").status_code == 200
        assert httpx.get(srv.url + "/envs").status_code == 401
        wrong = httpx.get(srv.url + "/envs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        with pytest.raises(EnvError, match="bearer token"):
            _remote(srv.url)
        with pytest.raises(EnvError, match="bearer token"):
            _remote(srv.url, token="nope")
        env = _remote(srv.url, token="s3cret")
        env.reset(env.make_task(0))
        # The fast step path defers to the route, which answers 401.
        step = httpx.post(f"{srv.url}/envs/{env.env_key}/step", json={"action": "inc"})
        assert step.status_code == 401
        task = env.make_task(1).model_dump(mode="json")
        reset = httpx.post(f"{srv.url}/envs/{env.env_key}/reset", json={"task": task})
        assert reset.status_code == 401
        monkeypatch.setenv("PALAESTRA_ENV_TOKEN", "s3cret")
        from_env = _remote(srv.url)
        assert from_env.reset(from_env.make_task(0)).text.startswith("Stop on")
        env.close()
        from_env.close()


def test_creating_past_max_envs_gets_503_with_retry_after() -> None:
    with ThreadServer(max_envs=2) as srv:
        a, b = _remote(srv.url), _remote(srv.url)
        full = httpx.post(srv.url + "/envs", json={"env_id": "toy-v1"})
        assert full.status_code == 503 and full.json()["error"] == "server_full"
        assert int(full.headers["Retry-After"]) >= 1
        assert "maximum of 2" in full.json()["detail"]
        with pytest.raises(EnvError, match="maximum of 2"):
            _remote(srv.url)
        a.close()
        c = _remote(srv.url)  # room again
        b.close()
        c.close()


def test_idle_environments_are_reaped() -> None:
    with ThreadServer(idle_timeout=0.3) as srv:
        env = _remote(srv.url)
        env.reset(env.make_task(0))
        time.sleep(1.0)
        assert httpx.get(srv.url + "/health").json()["live_envs"] == 0
        with pytest.raises(EnvError, match=r"gone.*idle"):
            env.step("inc")
        env.close()  # closing a reaped environment is not an error


# ---- failures are EnvError, never a reward ----------------------------------------------


def test_hanging_step_times_out_with_504_and_breaks_only_that_env(server: ThreadServer) -> None:
    env, healthy = _remote(server.url, "toy-fault-v1"), _remote(server.url)
    try:
        env.reset(env.make_task(0))
        healthy.reset(healthy.make_task(0))
        t0 = time.monotonic()
        with pytest.raises(EnvError, match=r"did not finish within 0\.5 s"):
            env.step("hang")
        assert time.monotonic() - t0 < 5
        with pytest.raises(EnvError, match="unusable"):
            env.step("inc")
        raw = httpx.post(f"{server.url}/envs/{env.env_key}/step", json={"action": "inc"})
        assert raw.status_code == 502 and raw.json()["error"] == "env_broken"
        assert healthy.step("inc").text == "You are at 1."  # the server kept serving
    finally:
        env.close()
        healthy.close()


def test_exceptions_inside_the_env_are_env_errors_with_the_message(server: ThreadServer) -> None:
    env = _remote(server.url, "toy-fault-v1")
    try:
        env.reset(env.make_task(0))
        with pytest.raises(EnvError, match="simulator exploded"):
            env.step("crash")
        raw = httpx.post(f"{server.url}/envs/{env.env_key}/step", json={"action": "crash"})
        assert raw.status_code == 500 and raw.json()["error"] == "env_error"
        with pytest.raises(EnvError, match="backend lost its database"):
            env.step("envfail")
        raw = httpx.post(f"{server.url}/envs/{env.env_key}/step", json={"action": "envfail"})
        assert raw.status_code == 502 and raw.json()["error"] == "env_error"
        assert env.step("inc").text == "You are at 1."  # a raised step changes nothing
    finally:
        env.close()


def test_caller_errors_map_to_the_local_exceptions(server: ThreadServer) -> None:
    env = _remote(server.url)
    try:
        with pytest.raises(ResetNeeded):
            env.step("inc")
        with pytest.raises(ValueError, match="is for"):
            env.reset(make("toy-fault-v1").make_task(0))
        with pytest.raises(KeyError, match="no environment 'nope-v1'"):
            _remote(server.url, "nope-v1")
        env.reset(env.make_task(0))
        while not env.step(env.expert()).done:
            pass
        with pytest.raises(ResetNeeded, match="episode is over"):
            env.step("inc")
    finally:
        env.close()
    with pytest.raises(EnvError, match="gone"):
        env.progress()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/envs", b"{not json", 400),
        ("POST", "/envs", b'{"env_id": 3}', 422),
        ("POST", "/envs", b'{"env_id": "toy-v1", "max_episode_steps": -1}', 422),
        ("POST", "/envs/KEY/step", b"{not json", 400),
        ("POST", "/envs/KEY/step", b'{"act": "inc"}', 422),
        ("POST", "/envs/KEY/step", b'{"action": 7}', 422),
        ("POST", "/envs/KEY/tasks", b'{"seed": -1}', 422),
        ("POST", "/envs/KEY/reset", b'{"task": {"env_id": "toy-v1"}}', 422),
        ("POST", "/envs/KEY/restore", b"{}", 422),
        ("POST", "/envs/missing/step", b'{"action": "inc"}', 404),
        ("GET", "/envs/missing/progress", b"", 404),
        ("DELETE", "/envs/missing", b"", 404),
        ("GET", "/no/such/route", b"", 404),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(
    server: ThreadServer, method: str, path: str, body: bytes, status: int
) -> None:
    env = _remote(server.url)
    try:
        env.reset(env.make_task(0))
        url = server.url + path.replace("KEY", env.env_key)
        r = httpx.request(method, url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        assert env.step("inc").text == "You are at 1."
    finally:
        env.close()


def test_a_client_timeout_is_an_env_error(server: ThreadServer) -> None:
    env = RemoteEnvironment(server.url, "toy-fault-v1", timeout=0.2)
    env.reset(env.make_task(0))
    with pytest.raises(EnvError, match=r"no answer within 0\.2 s"):
        env.step("slow")
    env.close()


def test_no_server_is_an_env_error() -> None:
    with pytest.raises(EnvError, match="lost the environment server"):
        RemoteEnvironment(f"http://127.0.0.1:{free_port()}", "toy-v1", timeout=2)


# ---- the standalone server (python -m), signal isolation, and a killed server ------------


def test_signal_isolation_interrupts_a_hanging_step(subprocess_server: str) -> None:
    env = _remote(subprocess_server, "toy-fault-v1")
    healthy = _remote(subprocess_server, "toy-fault-v1")
    env.reset(env.make_task(0))
    healthy.reset(healthy.make_task(0))
    t0 = time.monotonic()
    with pytest.raises(EnvError, match="did not finish"):
        env.step("hang")
    assert time.monotonic() - t0 < 5  # interrupted, not waited out
    with pytest.raises(EnvError, match="unusable"):
        env.step("inc")
    assert healthy.step("inc").text == "You are at 1."
    with pytest.raises(EnvError, match="simulator exploded"):
        healthy.step("crash")
    env.close()
    healthy.close()
    assert check_env(lambda: _remote(subprocess_server)).ok


def test_killed_server_mid_episode_raises_env_error_not_a_failed_episode() -> None:
    proc, url = _start_subprocess()
    try:
        env = _remote(url, "toy-fault-v1")
        env.reset(env.make_task(0, "train", "hard"))
        assert env.step("inc").reward == 0.0
        in_flight: list[BaseException | Observation] = []

        def slow_step() -> None:
            try:
                in_flight.append(env.step("slow"))
            except BaseException as e:
                in_flight.append(e)

        t = threading.Thread(target=slow_step)
        t.start()
        time.sleep(0.5)  # the server is inside the slow step
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        t.join(10)
        assert len(in_flight) == 1 and isinstance(in_flight[0], EnvError), in_flight
        assert "lost the environment server" in str(in_flight[0])
        # The next step: an error outcome, never an observation with reward 0.
        with pytest.raises(EnvError, match="lost the environment server"):
            env.step("inc")
        with pytest.raises(EnvError):
            env.available_actions()
        env.close()  # best effort on a dead server: no exception
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_client_and_palaestra_env_do_not_need_the_web_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"  # makes `import fastapi` fail
        "sys.modules['uvicorn'] = None\n"
        "import palaestra.env\n"
        "from palaestra.env.server import RemoteEnvironment\n"
        "try:\n"
        "    from palaestra.env.server import create_app\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "palaestra[web]"' in out.stdout

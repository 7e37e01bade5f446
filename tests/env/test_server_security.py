"""The environment server against hostile clients (issue 13, part 2).

Clients choose environments and actions, never what the server host does:
constructor arguments are refused unless the environment's spec lists them
as client-settable, ``serve-env`` will not listen beyond loopback without a
token, and malformed requests get a 4xx in one documented shape without
costing the client its keep-alive connection. Everything runs on loopback.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_harness import KeepAlive, ThreadServer
from typer.testing import CliRunner

import palaestra.env._registry as reg
from palaestra.cli import app as cli_app
from palaestra.env import ToyEnv, register
from palaestra.env.families.code import define_action
from palaestra.env.server import RemoteEnvironment

TOY = "palaestra.env._toy:ToyEnv"


@pytest.fixture(scope="module", autouse=True)
def _toy_registered() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reg, "_REGISTRY", dict(reg.registry()))
        register("toy-v1", TOY, override=True)
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer(max_envs=16, request_timeout=5) as s:
        yield s


class Listener:
    """A loopback TCP port that records whoever connects (the SSRF target)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self.requests.append(conn.recv(4096))

    def close(self) -> None:
        self.sock.close()


def _post(url: str, body: Any) -> httpx.Response:
    return httpx.post(url, json=body, timeout=30)


# ---- constructor arguments are the server's, not the client's ---------------------------


def test_exploit_client_chosen_unsafe_sandbox_writes_nothing(
    server: ThreadServer, tmp_path: Path
) -> None:
    """The issue's exploit as written: create code-v1 unsandboxed, then one step."""
    target = tmp_path / "written-by-a-client"
    kwargs = {"sandbox": "unsafe-local", "allow_unsafe": True}
    created = _post(server.url + "/envs", {"env_id": "code-v1", "kwargs": kwargs})
    key = created.json().get("env_key", "refused")
    task = _post(f"{server.url}/envs/{key}/tasks", {"seed": 0}).json()
    _post(f"{server.url}/envs/{key}/reset", {"task": task})
    code = f"open({str(target)!r}, 'w').write('pwned')\ndef f(*a):\n    return 0"
    _post(f"{server.url}/envs/{key}/step", {"action": define_action(code)})
    httpx.delete(f"{server.url}/envs/{key}")
    assert not target.exists(), "a client wrote a file on the server host"
    assert created.status_code == 403, created.text
    body = created.json()
    assert body["error"] == "forbidden"
    assert "sandbox" in body["detail"] and "allow_unsafe" in body["detail"]


def test_exploit_client_chosen_base_url_requests_nothing(server: ThreadServer) -> None:
    """Server-side request forgery: agentgym/* pointed at a URL the client picked."""
    target = Listener()
    try:
        created = _post(
            server.url + "/envs",
            {"env_id": "agentgym/webshop-v1", "kwargs": {"base_url": target.url}},
        )
        key = created.json().get("env_key", "refused")
        task = _post(f"{server.url}/envs/{key}/tasks", {"seed": 0}).json()
        _post(f"{server.url}/envs/{key}/reset", {"task": task})
        httpx.delete(f"{server.url}/envs/{key}")
        assert target.requests == [], "the server sent a request where the client told it to"
        assert created.status_code == 403, created.text
        assert created.json()["error"] == "forbidden" and "base_url" in created.json()["detail"]
    finally:
        target.close()


@pytest.mark.parametrize(
    ("env_id", "field", "value"),
    [
        ("code-v1", "sandbox", "unsafe-local"),
        ("code-v1", "allow_unsafe", True),
        ("code-v1", "case_timeout", 1e6),
        ("agentgym/webshop-v1", "base_url", "http://127.0.0.1:9"),
        ("agentgym/webshop-v1", "timeout", 1e9),
        ("toy-v1", "on_step", None),
    ],
)
def test_constructor_arguments_from_clients_are_refused_by_name(
    server: ThreadServer, env_id: str, field: str, value: Any
) -> None:
    r = _post(server.url + "/envs", {"env_id": env_id, "kwargs": {field: value}})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and repr(field) in r.json()["detail"]
    if field not in ("base_url", "timeout"):  # RemoteEnvironment's own arguments
        with pytest.raises(ValueError, match=field):  # the client raises what make() would
            RemoteEnvironment(server.url, env_id, timeout=10, **{field: value})
    assert httpx.get(server.url + "/health").json()["live_envs"] == 0


def tunable(level: int = 0, log_path: str = "") -> ToyEnv:
    """A toy env with one harmless and one host-touching constructor argument."""

    class Tuned(ToyEnv):
        description = f"level {level}, log {log_path or '-'}"

    return Tuned()


def test_client_settable_kwargs_and_server_side_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg.registry()))
    register("tunable-v1", tunable, client_kwargs=("level",))
    settings = {"tunable-v1": {"log_path": "/srv/log", "level": 1}}
    with ThreadServer(env_kwargs=settings) as srv:
        listed = {e["id"]: e for e in httpx.get(srv.url + "/envs").json()}
        assert listed["tunable-v1"]["client_kwargs"] == ["level"]
        assert listed["code-v1"]["client_kwargs"] == []
        env = RemoteEnvironment(srv.url, "tunable-v1", level=3)  # allowed: the client's wins
        assert env.description == "level 3, log /srv/log"
        env.close()
        env = RemoteEnvironment(srv.url, "tunable-v1")  # the operator's default
        assert env.description == "level 1, log /srv/log"
        env.close()
        with pytest.raises(ValueError, match=r"'log_path'.*server-side"):
            RemoteEnvironment(srv.url, "tunable-v1", log_path="/etc/passwd")


def test_the_operator_sets_agentgym_urls_server_side() -> None:
    target = Listener()
    try:
        settings = {"agentgym/webshop-v1": {"base_url": target.url, "timeout": 2}}
        with ThreadServer(env_kwargs=settings) as srv:
            created = _post(srv.url + "/envs", {"env_id": "agentgym/webshop-v1"})
            assert created.status_code == 200, created.text
            key = created.json()["env_key"]
            task = _post(f"{srv.url}/envs/{key}/tasks", {"seed": 0}).json()
            _post(f"{srv.url}/envs/{key}/reset", {"task": task})  # the stand-in hangs up
            assert target.requests, "the operator's base_url was not used"
    finally:
        target.close()


def test_server_side_settings_are_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="no environment 'nope-v1'"):
        ThreadServer(env_kwargs={"nope-v1": {}})


# ---- malformed requests: 4xx in one shape, and the connection stays usable ----------------


def _live_key(url: str) -> tuple[str, dict[str, Any]]:
    key = _post(url + "/envs", {"env_id": "toy-v1"}).json()["env_key"]
    task = _post(f"{url}/envs/{key}/tasks", {"seed": 0}).json()
    return key, task


#: (method, path, body) that must get 400: undecodable bodies and non-finite numbers.
BAD_BODIES: list[tuple[str, str, bytes]] = [
    ("POST", "/envs/KEY/step", b'{"action": NaN}'),
    ("POST", "/envs/KEY/step", b'{"action": "inc", "include_actions": Infinity}'),
    ("POST", "/envs", b'{"env_id": "toy-v1", "perturbation_seed": -Infinity}'),
    ("POST", "/envs", b'{"env_id": "toy-v1", "kwargs": {"x": NaN}}'),
    ("POST", "/envs/KEY/tasks", b'{"seed": 0, "params": {"x": 1e999}}'),
    ("POST", "/envs/KEY/reset", b'{"task": NaN}'),
    ("POST", "/envs/KEY/restore", b'{"snapshot_id": "0", "x": NaN}'),
    ("POST", "/envs/KEY/step", b"{not json"),
    ("POST", "/envs/KEY/step", b'\xff\xfe{"action": "inc"}'),
    ("POST", "/envs/KEY/step", b'{"action": "\xc3\x28"}'),
    ("POST", "/envs/KEY/step", b'{"action": "\\ud800"}'),
    ("POST", "/envs/KEY/tasks", b"[" * 100_000 + b"]" * 100_000),
    ("POST", "/envs/KEY/tasks", b'{"seed": 1' + b"0" * 5000 + b"}"),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_BODIES, ids=lambda v: repr(v)[:40])
def test_non_finite_and_undecodable_bodies_get_400(
    server: ThreadServer, method: str, path: str, body: bytes
) -> None:
    key, _ = _live_key(server.url)
    conn = KeepAlive(server.port)
    try:
        status, data, _ = conn.request(method, path.replace("KEY", key), body)
        assert status == 400, data[:300]
        err = json.loads(data)
        assert set(err) == {"error", "detail"} and err["error"] == "invalid_json"
        status, data, _ = conn.request("GET", f"/envs/{key}/info")
        assert status == 200, data
    finally:
        conn.close()
        httpx.delete(f"{server.url}/envs/{key}")


@pytest.mark.parametrize("snapshot_id", ["²", "٣", "00", "-1", "99", "0" * 5000, ""])
def test_snapshot_ids_never_issued_get_404(server: ThreadServer, snapshot_id: str) -> None:
    key, task = _live_key(server.url)
    conn = KeepAlive(server.port)
    try:
        conn.request("POST", f"/envs/{key}/reset", json.dumps({"task": task}).encode())
        conn.request("POST", f"/envs/{key}/snapshot", b"")
        body = json.dumps({"snapshot_id": snapshot_id}).encode()
        status, data, _ = conn.request("POST", f"/envs/{key}/restore", body)
        assert status == 404, data[:300]
        assert json.loads(data)["error"] == "snapshot_not_found"
        ok = conn.request("POST", f"/envs/{key}/restore", b'{"snapshot_id": "0"}')
        assert ok[0] == 200
    finally:
        conn.close()
        httpx.delete(f"{server.url}/envs/{key}")


def test_every_error_response_has_one_shape_and_keeps_the_connection(
    server: ThreadServer,
) -> None:
    key, task = _live_key(server.url)
    foreign = {k: v for k, v in task.items() if k != "task_id"} | {"env_id": "other-v1"}
    cases: list[tuple[str, str, bytes | None, int, str]] = [
        ("POST", "/envs", b'{"env_id": 3}', 422, "invalid_request"),
        ("POST", "/envs/KEY/step", b'{"act": "inc"}', 422, "invalid_request"),
        ("POST", "/envs/KEY/step", b'{"action": "inc"}', 409, "reset_needed"),
        ("POST", "/envs", b'{"env_id": "nope-v1"}', 404, "unknown_env_id"),
        ("POST", "/envs/missing/step", b'{"action": "inc"}', 404, "env_not_found"),
        ("GET", "/no/such/route", None, 404, "not_found"),
        ("PUT", "/envs/KEY/step", b"{}", 405, "method_not_allowed"),
        ("DELETE", "/health", None, 405, "method_not_allowed"),
        ("POST", "/envs", b'{"env_id": "code-v1", "kwargs": {"sandbox": "x"}}', 403, "forbidden"),
        ("POST", "/envs/KEY/reset", json.dumps({"task": foreign}).encode(), 400, "bad_request"),
        ("POST", "/envs/KEY/step", b"[1]", 422, "invalid_request"),
    ]
    conn = KeepAlive(server.port)
    try:
        for method, path, body, status, code in cases:
            got, data, headers = conn.request(method, path.replace("KEY", key), body)
            assert got == status, (method, path, data[:300])
            assert headers["content-type"] == "application/json"
            err = json.loads(data)
            assert set(err) == {"error", "detail"} and err["error"] == code, err
            assert isinstance(err["detail"], str) and err["detail"]
            assert conn.request("GET", "/health")[0] == 200
    finally:
        conn.close()
        httpx.delete(f"{server.url}/envs/{key}")


def test_validation_errors_name_the_field(server: ThreadServer) -> None:
    key, _ = _live_key(server.url)
    r = httpx.post(f"{server.url}/envs/{key}/step", json={"action": 7})
    assert r.status_code == 422 and "action" in r.json()["detail"]
    httpx.delete(f"{server.url}/envs/{key}")


def test_unauthorised_requests_get_the_same_shape() -> None:
    with ThreadServer(token="s3cret") as srv:
        conn = KeepAlive(srv.port)
        for path in ("/envs", "/envs/x/step"):
            method = "GET" if path == "/envs" else "POST"
            status, data, _ = conn.request(method, path, b'{"action": "inc"}')
            assert status == 401 and set(json.loads(data)) == {"error", "detail"}
        conn.close()


# ---- request bodies are capped -------------------------------------------------------------


def _chunked(n: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"action": "'
    for _ in range(n // chunk):
        yield b"a" * chunk
    yield b'"}'


def test_request_bodies_are_capped_at_max_body_bytes() -> None:
    with ThreadServer(max_body_bytes=4096) as srv:
        key, task = _live_key(srv.url)
        conn = KeepAlive(srv.port)
        try:
            big = json.dumps({"action": "a" * 5000}).encode()
            status, data, _ = conn.request("POST", f"/envs/{key}/step", big)
            assert status == 413 and json.loads(data)["error"] == "payload_too_large"
            assert "4096" in json.loads(data)["detail"]
            conn.request("POST", f"/envs/{key}/reset", json.dumps({"task": task}).encode())
            assert conn.request("POST", f"/envs/{key}/step", b'{"action": "inc"}')[0] == 200
        finally:
            conn.close()
        # Without a Content-Length (chunked), the server stops reading at the cap.
        r = httpx.post(f"{srv.url}/envs/{key}/tasks", content=_chunked(1 << 20))
        assert r.status_code == 413, r.text


def test_the_default_cap_is_one_mib(server: ThreadServer) -> None:
    key, _ = _live_key(server.url)
    under = json.dumps({"action": "a" * 1_000_000}).encode()
    assert httpx.post(f"{server.url}/envs/{key}/step", content=under).status_code == 409
    over = json.dumps({"action": "a" * (1 << 20)}).encode()
    assert httpx.post(f"{server.url}/envs/{key}/step", content=over).status_code == 413
    httpx.delete(f"{server.url}/envs/{key}")


# ---- the schema tells the truth about errors -------------------------------------------------


def test_openapi_documents_the_error_shape_on_every_operation(server: ThreadServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert set(spec["components"]["schemas"]["ErrorResponse"]["properties"]) == {
        "error",
        "detail",
    }
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status in ("400", "404", "405", "413", "422", "500"):
                ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path, status)


# ---- serve-env: where it listens, and the operator's settings ----------------------------------


@pytest.fixture
def no_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records uvicorn.run's arguments instead of serving."""
    import uvicorn

    calls: list[dict[str, Any]] = []

    def run(app: Any, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.delenv("PALAESTRA_ENV_TOKEN", raising=False)
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com", ""])
def test_serve_env_refuses_a_network_address_without_a_token(
    no_uvicorn: list[dict[str, Any]], host: str
) -> None:
    res = CliRunner().invoke(cli_app, ["serve-env", "--host", host])
    assert res.exit_code != 0 and no_uvicorn == [], res.output
    assert "--token" in res.output and "--insecure" in res.output
    for ok in (["--token", "t"], ["--insecure"]):
        res = CliRunner().invoke(cli_app, ["serve-env", "--host", host, *ok])
        assert res.exit_code == 0, res.output
    assert len(no_uvicorn) == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_serve_env_serves_loopback_without_a_token(
    no_uvicorn: list[dict[str, Any]], host: str
) -> None:
    res = CliRunner().invoke(cli_app, ["serve-env", "--host", host])
    assert res.exit_code == 0, res.output
    assert no_uvicorn[0]["host"] == host


def test_serve_env_takes_server_side_env_settings(no_uvicorn: list[dict[str, Any]]) -> None:
    args = ["serve-env", "--env-kwargs", 'code-v1={"sandbox": "bubblewrap"}']
    res = CliRunner().invoke(cli_app, [*args, "--max-body-bytes", "2048"])
    assert res.exit_code == 0, res.output
    manager = no_uvicorn[0]["app"].state.manager
    assert manager.env_kwargs == {"code-v1": {"sandbox": "bubblewrap"}}
    for bad, needle in [
        ("code-v1={nope", "JSON"),
        ("code-v1=[1]", "JSON object"),
        ("nope-v1={}", "no environment 'nope-v1'"),
        ("code-v1", "ID=JSON"),
    ]:
        res = CliRunner().invoke(cli_app, ["serve-env", "--env-kwargs", bad])
        assert res.exit_code != 0 and needle in res.output, res.output


def test_serve_env_help_states_the_threat_model() -> None:
    res = CliRunner().invoke(cli_app, ["serve-env", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for needle in ("--insecure", "--env-kwargs", "--token", "trust"):
        assert needle in text, needle

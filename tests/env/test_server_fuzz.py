"""Property-based fuzzing of the environment server's routes: no request gets a 5xx.

Hypothesis draws requests to every route — plausible bodies with hostile
values (NaN, huge numbers, lone surrogates, deep nesting, wrong types), raw
bytes, wrong methods, unknown keys — and sends them over one keep-alive
connection to a real uvicorn server on loopback. Every answer must be a
non-5xx status, errors must have the documented ``{"error", "detail"}``
shape, and the connection must survive. Bounded and derandomized, so it
runs the same examples every time in the default tier.
"""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import KeepAlive, ThreadServer

import palaestra.env._registry as reg
from palaestra.env import register

EXAMPLES = 300


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[ThreadServer, str, list[dict[str, Any]]]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reg, "_REGISTRY", dict(reg.registry()))
        register("toy-v1", "palaestra.env._toy:ToyEnv", override=True)
        with ThreadServer(max_envs=10_000, request_timeout=5) as srv:
            key = httpx.post(srv.url + "/envs", json={"env_id": "toy-v1"}).json()["env_key"]
            tasks = [
                httpx.post(f"{srv.url}/envs/{key}/tasks", json={"seed": s}).json() for s in range(3)
            ]
            yield srv, key, tasks


_text = st.text(
    st.characters() | st.sampled_from(["\ud800", "\udfff", "\x00", "²", "\u202e"]), max_size=12
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**18, max_value=10**40)
    | st.floats()  # NaN and +-Infinity included
    | _text
)
_json = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
    max_leaves=8,
)


def _maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return plausible | _json


def _body(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={k: _maybe(v) for k, v in fields.items()}) | _json


_env_ids = st.sampled_from(["toy-v1", "shop-v1", "maze-v1", "code-v1", "nope-v1"]) | _text


def _routes(tasks: list[dict[str, Any]]) -> list[tuple[str, str, st.SearchStrategy[Any] | None]]:
    def altered(t: dict[str, Any], k: str, v: Any) -> dict[str, Any]:
        return {**t, k: v}

    task = st.sampled_from(tasks) | st.builds(
        altered, st.sampled_from(tasks), st.sampled_from(sorted(tasks[0])), _json
    )
    return [
        ("GET", "/health", None),
        ("GET", "/envs", None),
        (
            "POST",
            "/envs",
            _body(
                {
                    "env_id": _env_ids,
                    "kwargs": st.dictionaries(_text, _json, max_size=2),
                    "max_episode_steps": st.integers(),
                    "perturbations": st.lists(_json, max_size=2),
                    "perturbation_seed": st.integers(),
                }
            ),
        ),
        (
            "POST",
            "/envs/{key}/tasks",
            _body(
                {
                    "seed": st.integers(),
                    "split": st.sampled_from(["train", "test", "heldout"]),
                    "difficulty": st.sampled_from(["easy", "medium", "hard"]),
                    "params": st.dictionaries(_text, _json, max_size=2),
                }
            ),
        ),
        ("POST", "/envs/{key}/reset", _body({"task": task, "include_actions": st.booleans()})),
        (
            "POST",
            "/envs/{key}/step",
            _body(
                {
                    "action": st.sampled_from(["inc", "dec", "stop"]) | _text,
                    "include_actions": st.booleans(),
                }
            ),
        ),
        ("GET", "/envs/{key}/observation", None),
        ("GET", "/envs/{key}/available_actions", None),
        ("GET", "/envs/{key}/progress", None),
        ("GET", "/envs/{key}/expert", None),
        ("GET", "/envs/{key}/info", None),
        ("POST", "/envs/{key}/snapshot", None),
        (
            "POST",
            "/envs/{key}/restore",
            _body(
                {
                    "snapshot_id": st.sampled_from(["0", "1", "00", "²"]) | _text,
                    "include_actions": st.booleans(),
                }
            ),
        ),
        ("DELETE", "/envs/{key}", None),
    ]


@st.composite
def requests(draw: st.DrawFn, key: str, tasks: list[dict[str, Any]]) -> tuple[str, str, bytes]:
    routes = _routes(tasks)
    method, path, body = draw(st.sampled_from(routes))
    # Mostly the live environment (DELETE never: it must stay) and the route's own method.
    live = method != "DELETE" and draw(st.integers(0, 3)) > 0
    k = key if live else draw(_text)
    path = path.replace("{key}", urllib.parse.quote(k, safe="") or "x")
    if draw(st.integers(0, 7)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    kind = draw(st.sampled_from(["json", "json", "json", "raw", "none"]))
    if kind == "raw":
        data = draw(st.binary(max_size=64))
    elif kind == "none" or body is None:
        data = b""
    else:
        data = json.dumps(draw(body), allow_nan=True).encode()
    return method, path, data


@pytest.mark.timeout(600)
def test_no_request_gets_a_server_error(
    target: tuple[ThreadServer, str, list[dict[str, Any]]],
) -> None:
    srv, key, tasks = target
    conn = [KeepAlive(srv.port)]
    seen: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(req=requests(key, tasks), content_type=st.sampled_from(["application/json", ""]))
    def check(req: tuple[str, str, bytes], content_type: str) -> None:
        method, path, body = req
        sent = (method, path, body[:200])
        try:
            status, data, headers = conn[0].request(
                method, path, body, {"Content-Type": content_type}
            )
            seen[status] += 1
            assert status < 500, (*sent, data[:300])
            if status >= 400:
                assert headers["content-type"] == "application/json", (*sent, headers)
                err = json.loads(data)
                assert set(err) == {"error", "detail"}, (*sent, err)
            try:  # the connection must carry the next request
                conn[0].request("GET", "/health")
            except (AssertionError, OSError) as e:
                raise AssertionError(f"the connection did not survive {sent}: {e!r}") from None
        except BaseException:
            conn[0].close()
            conn[0] = KeepAlive(srv.port)  # so the next example starts on a live connection
            raise

    try:
        check()
    finally:
        conn[0].close()
    print(f"statuses: {dict(sorted(seen.items()))}")
    # The fuzzer reached past the parsers: successes, and each kind of refusal.
    assert {200, 400, 404, 405, 409, 422} <= set(seen), seen

"""The environment server against its own OpenAPI schema (schemathesis; integration tier).

Schemathesis reads ``/openapi.json`` and generates requests for every
operation — valid ones and, in negative mode, ones that break the schema —
and checks each answer: no 5xx, a documented status, the documented content
type and a body that validates against the documented schema (errors
included). Bounded examples, against a real uvicorn server on loopback.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import palaestra.env._registry as reg
from palaestra.env import register
from palaestra.env.server import create_app

pytestmark = pytest.mark.integration

EXAMPLES = 150


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str]]:
    """A loopback server with toy-v1 registered; yields (base URL, a live env key)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reg, "_REGISTRY", dict(reg.registry()))
        register("toy-v1", "palaestra.env._toy:ToyEnv", override=True)
        config = uvicorn.Config(
            create_app(max_envs=10_000), host="127.0.0.1", port=0, log_level="warning"
        )
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not srv.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        port = srv.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        key = httpx.post(url + "/envs", json={"env_id": "toy-v1"}).json()["env_key"]
        task = httpx.post(f"{url}/envs/{key}/tasks", json={"seed": 0}).json()
        httpx.post(f"{url}/envs/{key}/reset", json={"task": task})
        yield url, key
        srv.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("live_key", [True, False], ids=["live-key", "any-key"])
def test_server_conforms_to_its_openapi_schema(
    server: tuple[str, str], mode: GenerationMode, live_key: bool
) -> None:
    url, key = server
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    strategy = schema.as_strategy(
        generation_mode=mode, path_parameters={"key": key} if live_key else None
    )
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    seen: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=strategy)
    def check(case: schemathesis.Case[Any]) -> None:
        # Keep the live environment: DELETE it would leave the rest of the run on 404s.
        if live_key and case.method.upper() == "DELETE":
            return
        seen[case.call_and_validate(base_url=url, checks=checks).status_code] += 1

    check()
    print(f"{mode.value}, {'live' if live_key else 'any'} key: {dict(sorted(seen.items()))}")
    assert sum(seen.values()) >= EXAMPLES // 2, seen

"""OpenAIModel against a real OpenAI-compatible HTTP server on loopback (see _fake_openai_server)."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _fake_openai_server import FakeOpenAIServer, FakeState

from palaestra.model import ChatMessage, GenerationConfig, ModelError, get_model
from palaestra.model._openai import OpenAIModel, _retry_after


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeState:
    server.state.reset()
    return server.state


@pytest.fixture
def make(server: FakeOpenAIServer) -> Iterator[Any]:
    made: list[OpenAIModel] = []

    def _make(name: str = "echo", **kw: Any) -> OpenAIModel:
        kw = {"base_url": server.base_url, "api_key": "sk-test", "backoff_base": 0.001, **kw}
        model = OpenAIModel.from_id(name, **kw)
        made.append(model)
        return model

    yield _make
    for m in made:
        m.close()


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


# -- happy path and request mapping ------------------------------------------------------


def test_batch_replies_in_order_with_usage(make: Any, fake: FakeState) -> None:
    out = make().generate([user("one"), user("two words"), user("three")])
    assert [c.text for c in out] == ["echo: one", "echo: two words", "echo: three"]
    assert [c.completion_tokens for c in out] == [2, 3, 2]
    assert [c.prompt_tokens for c in out] == [1, 2, 1]
    assert all(c.finish_reason == "stop" and not c.estimated_tokens for c in out)
    assert all(c.logprobs is None and c.token_ids is None for c in out)
    assert fake.auth == ["Bearer sk-test"] * 3


def test_generation_config_maps_to_request_fields(make: Any, fake: FakeState) -> None:
    cfg = GenerationConfig(max_new_tokens=17, temperature=0.7, top_p=0.9, stop=["x"], seed=5)
    make().generate([user("hi")], cfg)
    body = fake.bodies[0]
    assert body["model"] == "echo"
    assert body["max_tokens"] == 17
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"]) == (0.7, 0.9, 5, ["x"])
    assert "logprobs" not in body and "top_logprobs" not in body

    fake.reset()
    make(max_tokens_param="max_completion_tokens", extra_body={"top_k": 3}).generate([user("hi")])
    body = fake.bodies[0]
    assert body["max_completion_tokens"] == 256 and "max_tokens" not in body
    assert body["top_k"] == 3
    assert "seed" not in body and "stop" not in body


def test_stop_is_passed_through_and_reported(make: Any, fake: FakeState) -> None:
    [c] = make().generate([user("alpha beta gamma")], GenerationConfig(stop=[" gamma"]))
    assert fake.bodies[0]["stop"] == [" gamma"]
    assert c.text == "echo: alpha beta"
    assert c.finish_reason == "stop"


def test_more_than_four_stops_are_applied_client_side(make: Any, fake: FakeState) -> None:
    stops = ["s1", "s2", "s3", "s4", " five"]
    [c] = make().generate([user("alpha five beta")], GenerationConfig(stop=stops))
    assert fake.bodies[0]["stop"] == stops[:4]
    assert c.text == "echo: alpha"
    assert c.finish_reason == "stop"


def test_stop_string_left_in_by_server_is_cut(make: Any) -> None:
    [c] = make("keeps-stop").generate([user("x")], GenerationConfig(stop=["STOP"]))
    assert c.text == "before "
    assert c.finish_reason == "stop"


def test_length_finish_reason(make: Any) -> None:
    [c] = make().generate([user("a b c d e")], GenerationConfig(max_new_tokens=2))
    assert c.text == "echo: a"
    assert c.finish_reason == "length"
    assert c.completion_tokens == 2


def test_content_filter_is_reported_as_stop(make: Any) -> None:
    [c] = make("filtered").generate([user("x")], GenerationConfig(max_new_tokens=1))
    assert c.text == ""
    assert c.finish_reason == "stop"


def test_train_flag_is_never_sent_and_tool_role_maps_to_user(make: Any, fake: FakeState) -> None:
    conv = [
        ChatMessage(role="system", content="sys"),
        ChatMessage(role="user", content="task"),
        ChatMessage(role="assistant", content="act", train=False),
        ChatMessage(role="tool", content="observation"),
        ChatMessage(role="assistant", content="act2", train=True),
        ChatMessage(role="user", content="go on"),
    ]
    make().generate([conv])
    sent = fake.bodies[0]["messages"]
    assert all(set(m) == {"role", "content"} for m in sent)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in sent] == [m.content for m in conv]

    fake.reset()
    make(tool_role="tool").generate([conv])
    assert fake.bodies[0]["messages"][3] == {"role": "tool", "content": "observation"}


def test_logprobs_shape(make: Any, fake: FakeState) -> None:
    [c] = make().generate([user("a b c")], GenerationConfig(logprobs=True))
    assert fake.bodies[0]["logprobs"] is True
    assert fake.bodies[0]["top_logprobs"] == 0
    assert c.logprobs == pytest.approx([-0.1, -0.2, -0.3, -0.4])
    assert len(c.logprobs or []) == c.completion_tokens
    assert c.token_ids is None


def test_missing_usage_is_estimated(make: Any) -> None:
    [c] = make("no-usage").generate([user("twelve chars")])
    assert c.estimated_tokens
    assert c.text == "echo: twelve chars"
    assert c.completion_tokens == 5  # ceil(18 chars / 4)
    assert c.prompt_tokens == 3 + 4  # ceil(12 / 4) + per-message overhead
    [c] = make("no-usage").generate([user("a b")], GenerationConfig(logprobs=True))
    assert c.estimated_tokens
    assert c.completion_tokens == 3  # one per logprob entry


def test_empty_batch_sends_nothing(make: Any, fake: FakeState) -> None:
    assert make().generate([]) == []
    assert fake.bodies == []


# -- concurrency --------------------------------------------------------------------------


def test_batch_overlaps_up_to_the_concurrency_limit(make: Any, fake: FakeState) -> None:
    fake.slow_seconds = 0.2
    model = make("slow", max_concurrency=3)
    t0 = time.perf_counter()
    out = model.generate([user(f"p{i}") for i in range(9)])
    elapsed = time.perf_counter() - t0
    assert [c.text for c in out] == [f"echo: p{i}" for i in range(9)]
    assert fake.max_in_flight == 3  # overlapped, and never beyond the limit
    assert elapsed < 9 * 0.2  # serial would take 1.8 s; three waves take ~0.6 s


def test_limit_is_shared_by_concurrent_agenerate_calls(make: Any, fake: FakeState) -> None:
    fake.slow_seconds = 0.1
    model = make("slow", max_concurrency=2)

    async def main() -> list[str]:
        outs = await asyncio.gather(*(model.agenerate([user(f"q{i}")]) for i in range(6)))
        return [o[0].text for o in outs]

    assert asyncio.run(main()) == [f"echo: q{i}" for i in range(6)]
    assert fake.max_in_flight == 2


def test_generate_works_inside_a_running_event_loop(make: Any) -> None:
    model = make()

    async def main() -> str:
        return model.generate([user("inside")])[0].text

    assert asyncio.run(main()) == "echo: inside"
    assert asyncio.run(main()) == "echo: inside"  # a second loop, same model


def test_close_then_reuse(make: Any) -> None:
    model = make()
    assert model.generate([user("a")])[0].text == "echo: a"
    model.close()
    assert model.generate([user("b")])[0].text == "echo: b"


def test_close_releases_clients_of_every_loop(make: Any) -> None:
    model = make()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(model.agenerate([user("idle loop")]))
    idle_client = model._per_loop[loop].client

    async def inside() -> Any:
        await model.agenerate([user("running loop")])
        client = model._per_loop[asyncio.get_running_loop()].client
        model.close()  # from async code: the close is scheduled on this loop
        await asyncio.sleep(0.05)
        return client

    running_client = asyncio.run(inside())
    assert running_client.is_closed
    assert not idle_client.is_closed  # its loop is idle: cannot run it from inside another
    model.close()
    assert idle_client.is_closed
    loop.close()


# -- retries and errors -------------------------------------------------------------------


def test_429_is_retried_after_retry_after(make: Any, fake: FakeState) -> None:
    fake.retry_header = ("Retry-After", "1")
    t0 = time.perf_counter()
    [c] = make("rate-limited").generate([user("x")])
    elapsed = time.perf_counter() - t0
    assert c.text == "echo: x"
    assert fake.attempts["x"] == 2
    assert elapsed >= 0.9  # the header, not the 1 ms backoff, set the wait


def test_retry_after_ms_header_is_honoured(make: Any, fake: FakeState) -> None:
    fake.retry_header = ("retry-after-ms", "300")
    t0 = time.perf_counter()
    make("rate-limited").generate([user("y")])
    assert 0.25 <= time.perf_counter() - t0 < 2
    assert fake.attempts["y"] == 2


def test_500_then_success(make: Any, fake: FakeState) -> None:
    out = make("flaky").generate([user("a"), user("b")])
    assert [c.text for c in out] == ["echo: a", "echo: b"]
    assert fake.attempts == {"a": 2, "b": 2}


def test_persistent_5xx_raises_after_retries(make: Any, fake: FakeState) -> None:
    with pytest.raises(ModelError, match=r"HTTP 503: The engine is currently overloaded") as e:
        make("down", max_retries=3).generate([user("z")])
    assert fake.attempts["z"] == 4
    assert "4 attempts" in str(e.value)


def test_400_fails_immediately_with_server_message(make: Any, fake: FakeState) -> None:
    with pytest.raises(ModelError, match=r"HTTP 400: Invalid value for 'messages'"):
        make("bad-request").generate([user("z")])
    assert fake.attempts["z"] == 1


def test_unknown_model_fails_immediately(make: Any, fake: FakeState) -> None:
    with pytest.raises(ModelError, match=r"HTTP 404: The model `gpt-nope` does not exist") as e:
        make("gpt-nope").generate([user("@missing")])
    assert fake.attempts["@missing"] == 1
    assert "base_url" not in str(e.value)


def test_wrong_route_hints_at_base_url(make: Any, server: FakeOpenAIServer) -> None:
    model = make(base_url=server.base_url.removesuffix("/v1"))
    with pytest.raises(ModelError, match=r"HTTP 404: Not Found.*should end in /v1"):
        model.generate([user("x")])


def test_hanging_request_times_out_and_retries(make: Any, fake: FakeState) -> None:
    fake.hang_seconds = 3.0
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"ReadTimeout.*3 attempts"):
        make("hang", timeout=0.2, max_retries=2).generate([user("h")])
    assert fake.attempts["h"] == 3
    assert time.perf_counter() - t0 < 2.9  # never waited for the 3 s reply


def test_connection_refused_is_retried_then_raises() -> None:
    with socket.socket() as s:  # a port that is free, so nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = OpenAIModel("m", base_url=f"http://127.0.0.1:{port}/v1", backoff_base=0.001)
    with pytest.raises(ModelError, match=r"ConnectError.*5 attempts"):
        model.generate([user("x")])
    model.close()


def test_one_failing_request_fails_the_batch(make: Any, fake: FakeState) -> None:
    with pytest.raises(ModelError, match="HTTP 400"):
        make().generate([user("fine"), user("@bad-request"), user("also fine")])


def test_non_json_reply_is_a_model_error(make: Any) -> None:
    with pytest.raises(ModelError, match="not JSON"):
        make("garbage").generate([user("x")])


# -- construction -------------------------------------------------------------------------


def test_registry_id_and_environment_variables(
    server: FakeOpenAIServer, fake: FakeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    model = get_model("openai/echo")
    assert isinstance(model, OpenAIModel)
    assert model.id == "openai/echo"
    assert model.generate([user("env")])[0].text == "echo: env"
    assert fake.auth == ["Bearer sk-from-env"]
    model.close()


def test_no_key_sends_no_authorization(
    make: Any, fake: FakeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    make(api_key=None).generate([user("x")])
    assert fake.auth == [None]


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIModel("gpt-4o-mini").base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize("kw", [{"max_concurrency": 0}, {"max_retries": -1}, {"timeout": 0}])
def test_invalid_settings_are_rejected(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OpenAIModel("m", **kw)


def test_retry_after_parsing() -> None:
    assert _retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert _retry_after(httpx.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert _retry_after(httpx.Headers({})) is None
    assert _retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (_retry_after(httpx.Headers({"Retry-After": later})) or 0) <= 30

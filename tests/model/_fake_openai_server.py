"""A real OpenAI-compatible HTTP server on loopback with scripted behaviour, for client tests.

A FastAPI app served by uvicorn in a daemon thread on a free port. The
``model`` field of a request picks the behaviour; a last user message that
starts with ``@name`` overrides it for that one request (so one batch can mix
behaviours). Per-key attempt counters (key = last user message) make
"fail once, then succeed" scripts deterministic under concurrency.

Behaviours:
  echo         reply ``echo: <last user message>``; ``max_tokens`` counts words
               (finish ``length``), ``stop`` is applied server-side, logprobs
               are ``-(i+1)/10`` per word, usage counts words
  slow         echo after ``slow_seconds``, counting requests in flight
  rate-limited 429 with ``retry_header`` on the first attempt per key, then echo
  flaky        500 on the first attempt per key, then echo
  down         always 503
  bad-request  400 with an OpenAI-style error message
  missing      404 "model does not exist"
  hang         sleeps ``hang_seconds`` before answering
  no-usage     echo without the ``usage`` field
  filtered     empty content, finish_reason ``content_filter``
  keeps-stop   ignores ``stop`` and returns ``before STOP after``
  garbage      200 with a non-JSON body
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response


@dataclass
class FakeState:
    """What the server saw; reset between tests."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    slow_seconds: float = 0.2
    hang_seconds: float = 3.0
    retry_header: tuple[str, str] = ("Retry-After", "0")

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _echo(body: dict[str, Any], *, usage: bool = True) -> dict[str, Any]:
    messages: list[dict[str, Any]] = body["messages"]
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    words = f"echo: {last}".split()
    finish = "stop"
    if len(words) > body.get("max_tokens", 10**9):
        words, finish = words[: body["max_tokens"]], "length"
    text = " ".join(words)
    for s in body.get("stop") or []:
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    n = len(text.split())
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish,
        "logprobs": None,
    }
    if body.get("logprobs"):
        choice["logprobs"] = {
            "content": [
                {"token": w, "logprob": -(i + 1) / 10, "bytes": None, "top_logprobs": []}
                for i, w in enumerate(text.split())
            ]
        }
    reply: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [choice],
    }
    if usage:
        prompt = sum(len(str(m["content"]).split()) for m in messages)
        reply["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": n,
            "total_tokens": prompt + n,
        }
    return reply


def build_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        body: dict[str, Any] = await request.json()
        state.bodies.append(body)
        state.auth.append(request.headers.get("authorization"))
        user = [m["content"] for m in body["messages"] if m["role"] == "user"]
        key = user[-1] if user else ""
        behaviour = key.split()[0][1:] if key.startswith("@") else body["model"]
        state.attempts[key] += 1
        first = state.attempts[key] == 1

        if behaviour == "slow":
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                await asyncio.sleep(state.slow_seconds)
            finally:
                state.in_flight -= 1
        elif behaviour == "rate-limited" and first:
            name, value = state.retry_header
            return _error(429, "Rate limit reached for requests", {name: value})
        elif behaviour == "flaky" and first:
            return _error(500, "The server had an error while processing your request")
        elif behaviour == "down":
            return _error(503, "The engine is currently overloaded")
        elif behaviour == "bad-request":
            return _error(400, "Invalid value for 'messages': bad request from the fake")
        elif behaviour == "missing":
            return _error(404, f"The model `{body['model']}` does not exist")
        elif behaviour == "hang":
            await asyncio.sleep(state.hang_seconds)
        elif behaviour == "no-usage":
            return JSONResponse(_echo(body, usage=False))
        elif behaviour == "filtered":
            reply = _echo(body)
            reply["choices"][0]["message"]["content"] = ""
            reply["choices"][0]["finish_reason"] = "content_filter"
            return JSONResponse(reply)
        elif behaviour == "keeps-stop":
            reply = _echo({**body, "stop": []})
            reply["choices"][0]["message"]["content"] = "before STOP after"
            return JSONResponse(reply)
        elif behaviour == "garbage":
            return PlainTextResponse("<html>proxy error</html>")
        return JSONResponse(_echo(body))

    return app


class FakeOpenAIServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``base_url`` ends in ``/v1``."""

    def __init__(self) -> None:
        self.state = FakeState()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            build_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

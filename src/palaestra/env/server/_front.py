"""What every request to the environment server passes first (one ASGI middleware).

In order:

1. **The body cap.** A ``POST`` body longer than ``max_body_bytes`` gets
   413 without being read: at once when ``Content-Length`` says so, else as
   soon as the bytes read pass the cap (uvicorn discards the rest, and the
   connection stays usable). Other methods pass straight through: no route
   reads their bodies, and uvicorn buffers at most 64 KiB of an unread one.
2. **The JSON check.** A ``POST`` body must be UTF-8 JSON (RFC 8259) with
   finite numbers and no lone surrogates, or it gets 400 ``invalid_json``.
   Python's ``json`` (which FastAPI uses) accepts ``NaN``, ``Infinity``,
   ``1e999`` and ``"\\ud800"``; none of them survives being written back
   out, so they would come back as a 500 from deep inside a response.
3. **The fast path.** ``POST /envs/{key}/step`` and ``/reset`` are answered
   here, skipping FastAPI's routing and dependency resolution (a third of
   the server's CPU per request on the 2-core reference machine); they call
   the same :class:`EnvManager` methods. Anything else (another route, a bad
   token, a body that fails validation) goes on to the FastAPI routes with
   the body replayed, so both paths answer identically.
4. **The last resort.** An exception that escapes everything (a server bug)
   becomes a 500 in the documented error shape, and the connection stays
   usable; Starlette's own handler would re-raise it, and uvicorn then drops
   the keep-alive connection.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError

from palaestra.env._core import Observation
from palaestra.env.server._manager import ApiError, EnvManager, dump
from palaestra.env.server._models import ErrorResponse, Reset, Step

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("palaestra.env.server")

_JSON_HEADERS = [(b"content-type", b"application/json")]
#: A ``\uXXXX`` escape of a UTF-16 surrogate (paired or lone); checked only when present.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def error_body(e: ApiError) -> bytes:
    # An exception's text may quote input verbatim; a lone surrogate in it would make
    # the error itself unserialisable.
    detail = e.message.encode("utf-8", "backslashreplace").decode("utf-8")
    return dump(ErrorResponse(error=e.code, detail=detail))


def token_ok(expected: bytes, header: bytes | None) -> bool:
    if header is None or header[:7].lower() != b"bearer ":
        return False
    return hmac.compare_digest(header[7:].strip(), expected)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit a 64-bit float")
    return value


# One decoder, built once: json.loads(..., parse_float=...) builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON, or ``None`` if it is."""
    try:
        text = body.decode("utf-8")
        obj = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(text):
            # Paired surrogates decode to one character; a lone one cannot be encoded.
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError as e:
        return f"the body is not UTF-8 ({e})"
    except UnicodeEncodeError:
        return "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff unpaired)"
    except RecursionError:
        return "the body is nested too deeply"
    except ValueError as e:
        return str(e)
    return None


#: A response Front gives itself: status, body, extra headers.
_Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class Front:
    """The middleware described in the module docstring; wraps the FastAPI app."""

    def __init__(
        self, app: ASGIApp, manager: EnvManager, token: bytes | None, max_body_bytes: int
    ) -> None:
        self.app = app
        self.manager = manager
        self.token = token
        self.max_body_bytes = max_body_bytes
        too_large = ApiError(
            413,
            "payload_too_large",
            f"the request body exceeds this server's limit of {max_body_bytes} bytes "
            "(palaestra serve-env --max-body-bytes)",
        )
        self._too_large: _Answer = (413, error_body(too_large), [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            if scope["method"] != "POST":  # no route reads the body of another method
                return await self.app(scope, receive, tracking_send)
            answer = await self._answer(scope, receive)
            if isinstance(answer, bytes):  # the body, for the FastAPI routes
                await self.app(scope, _replay(answer, receive), tracking_send)
            elif answer is not None:
                started = True
                await _respond(send, *answer)
        except Exception as e:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if not started:  # else uvicorn closes the connection: nothing better to do
                err = ApiError(500, "internal", f"server error: {type(e).__name__}: {e}")
                await _respond(send, 500, error_body(err), [])

    async def _answer(self, scope: Scope, receive: Receive) -> _Answer | bytes | None:
        """Our own response; or the body, for the routes; or ``None`` if the client left."""
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return self._too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not body:
            return body

        path: str = scope["path"]
        key, _, op = path[6:].partition("/") if path.startswith("/envs/") else ("", "", "")
        fast = bool(key) and op in ("step", "reset") and self._authorised(scope)
        if fast and op == "step":
            # A body that validates as a Step is acceptable JSON: pydantic's parser is
            # strict (UTF-8, no lone surrogates, bounded nesting) and a Step holds no
            # number that could be NaN. So the hottest request skips the JSON check.
            try:
                step = Step.model_validate_json(body)
            except ValidationError:
                pass  # the JSON check below, or the route's 422
            else:
                return await self._run(self.manager.step(key, step.action, step.include_actions))
        problem = json_problem(body)
        if problem is not None:
            err = ApiError(400, "invalid_json", f"the request body is not valid JSON: {problem}")
            return 400, error_body(err), []
        if fast and op == "reset":
            try:
                reset = Reset.model_validate_json(body)
            except ValidationError:
                return body  # the route answers 422
            return await self._run(self.manager.reset(key, reset.task, reset.include_actions))
        return body

    @staticmethod
    async def _run(call: Awaitable[Observation]) -> _Answer:
        try:
            return 200, dump(await call), []
        except ApiError as e:
            extra = [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
            return e.status, error_body(e), extra

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        return token_ok(self.token, header)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*_JSON_HEADERS, *headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, already read, as one message; then the real ``receive`` (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay

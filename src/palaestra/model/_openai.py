"""``OpenAIModel``: any server that speaks the OpenAI Chat Completions API (``openai/<model>``).

Talks to ``POST {base_url}/chat/completions`` with plain ``httpx`` (no ``openai``
package), so the same client serves OpenAI itself, vLLM, llama.cpp's server,
Ollama, LiteLLM, OpenRouter and friends. ``base_url`` is the prefix *including*
``/v1``, as in the OpenAI SDK: ``http://127.0.0.1:8000/v1``.

Requests
--------
One request per conversation; ``agenerate`` sends a batch concurrently, at most
``max_concurrency`` in flight per event loop (the limit is shared by every
``agenerate`` call running on that loop, so many episodes asking for batches of
one still respect it). ``generate`` runs ``agenerate`` on a private event loop
in a daemon thread, so it works whether or not the calling thread already runs
a loop, and keeps its connection pool between calls.

:class:`~palaestra.model.GenerationConfig` maps to ``max_tokens`` (rename with
``max_tokens_param="max_completion_tokens"`` for OpenAI's reasoning models),
``temperature``, ``top_p``, ``stop``, ``seed`` and ``logprobs``; ``extra_body``
adds provider-specific fields. Only ``role`` and ``content`` of a message are
sent: the ``train`` flag is training metadata and never leaves the process.

Deviations and choices
----------------------
- ``tool`` messages are sent as ``user`` messages by default: the OpenAI API
  accepts role ``tool`` only as the answer to an assistant ``tool_calls`` entry
  (with its ``tool_call_id``), which our plain-text agent loops never produce.
  ``tool_role="tool"`` sends them unchanged for servers that accept it.
- ``stop``: the OpenAI API takes at most 4 stop strings; the first 4 go to the
  server and *all* of them are applied again to the reply with
  :func:`~palaestra.model.apply_stop` (servers differ on whether the stop
  string is kept), so the contract holds on every server.
- ``finish_reason``: ``"length"`` stays ``"length"``; everything else
  (``"stop"``, ``"content_filter"``, ``"tool_calls"``, ``"function_call"``)
  becomes ``"stop"`` — the output ended for a reason other than the token
  budget, and whatever text came back is returned. A missing reason is
  ``"length"`` only if the budget was used up.
- ``logprobs``: sent as ``logprobs: true, top_logprobs: 0`` (llama-cpp-python
  needs the second) and read from ``choices[0].logprobs.content[*].logprob``;
  the API does not return token ids, so ``token_ids`` is always ``None``. A
  server that ignores the request gives ``logprobs=None``.
- Token counts come from ``usage``; a server without it gets an estimate
  (~4 characters per token, or the number of logprob entries for the reply)
  and ``estimated_tokens=True``.

Failures
--------
HTTP 429, 408 and 5xx, connection errors and timeouts are retried up to
``max_retries`` times with exponential backoff and jitter
(``backoff_base * 2**attempt``, capped at ``backoff_max``); a ``Retry-After``
(or OpenAI's ``retry-after-ms``) header overrides the backoff, capped at
``retry_after_max``. Other 4xx (bad model name, bad request, bad key) raise
:class:`~palaestra.model.ModelError` at once with the server's message; so do
exhausted retries. When one request of a batch fails, the others are cancelled
and the batch raises. ``timeout`` is httpx's per-attempt limit on connecting
and on each wait for data (a non-streamed reply arrives at once, so in practice
it bounds how long the server may think).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx

from palaestra.model._core import (
    Completion,
    Conversation,
    FinishReason,
    GenerationConfig,
    Model,
    ModelError,
    apply_stop,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_MAX_SERVER_STOPS = 4  # the OpenAI API rejects more than 4 stop sequences
_CHARS_PER_TOKEN = 4  # rough rule of thumb for English text, used only without `usage`
_T = TypeVar("_T")
_closing: set[asyncio.Task[None]] = set()


class _RetryableError(Exception):
    """One failed attempt that is worth repeating."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _LoopResources:
    """The client and concurrency limit of one event loop (httpx pools are loop-bound)."""

    client: httpx.AsyncClient
    semaphore: asyncio.Semaphore


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint. See the module docstring."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        tool_role: Literal["user", "tool"] = "user",
        max_tokens_param: str = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.id = f"openai/{model}"
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.tool_role: Literal["user", "tool"] = tool_role
        self.max_tokens_param = max_tokens_param
        self.extra_body: dict[str, Any] = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers: dict[str, str] = {"Authorization": f"Bearer {key}"} if key else {}
        self._headers.update(headers or {})
        # Jitter only spreads retries out; a string seed keeps runs repeatable anyway.
        self._rng = random.Random(f"palaestra.openai.backoff:{model}")
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopResources] = (
            weakref.WeakKeyDictionary()
        )
        self._private_loop: asyncio.AbstractEventLoop | None = None
        self._private_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_id(
        cls,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 60,
        max_retries: int = 4,
        **kw: Any,
    ) -> OpenAIModel:
        """``get_model("openai/gpt-4o-mini")`` or ``get_model("openai/x", base_url="http://…/v1")``."""
        return cls(
            name,
            base_url=base_url,
            api_key=api_key,
            max_concurrency=max_concurrency,
            timeout=timeout,
            max_retries=max_retries,
            **kw,
        )

    # -- public API -----------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        if not prompts:
            return []
        return self._run_private(self.agenerate(prompts, config))

    async def agenerate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        config = config or GenerationConfig()
        if not prompts:
            return []
        res = self._resources()
        tasks = [asyncio.create_task(self._complete(res, conv, config)) for conv in prompts]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def close(self) -> None:
        """Close every connection pool and stop the private loop. The model stays usable."""
        with self._lock:
            private, thread = self._private_loop, self._private_thread
            self._private_loop = self._private_thread = None
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        # Clients of idle loops cannot be closed from inside a running loop: keep those
        # for a later close().
        keep: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopResources] = (
            weakref.WeakKeyDictionary()
        )
        for loop, res in list(self._per_loop.items()):
            if loop is private or loop.is_closed():
                continue
            if loop is current:
                # Called from async code on this loop: cannot block, so schedule the close
                # (and hold the task: the loop keeps only weak references to tasks).
                task = loop.create_task(res.client.aclose())
                _closing.add(task)
                task.add_done_callback(_closing.discard)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(res.client.aclose(), loop)
            elif current is None:
                loop.run_until_complete(res.client.aclose())
            else:
                keep[loop] = res
        if private is not None and thread is not None:
            res = self._per_loop.get(private)
            if res is not None:
                asyncio.run_coroutine_threadsafe(res.client.aclose(), private).result()
            private.call_soon_threadsafe(private.stop)
            thread.join()
            private.close()
        self._per_loop = keep

    # -- plumbing ---------------------------------------------------------------------------

    def _run_private(self, coro: Coroutine[Any, Any, _T]) -> _T:
        with self._lock:
            if self._private_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"palaestra-openai-{self.model}", daemon=True
                )
                thread.start()
                self._private_loop, self._private_thread = loop, thread
            loop = self._private_loop
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:  # e.g. Ctrl-C in the caller: do not leave requests running
            future.cancel()
            raise

    def _resources(self) -> _LoopResources:
        loop = asyncio.get_running_loop()
        with self._lock:  # the private loop's thread and the caller's may both get here
            return self._per_loop.get(loop) or self._new_resources(loop)

    def _new_resources(self, loop: asyncio.AbstractEventLoop) -> _LoopResources:
        # A finished `asyncio.run` leaves a closed loop whose semaphore may still point at
        # it (keeping the weak key alive): drop those entries.
        for old in [lp for lp in self._per_loop if lp.is_closed()]:
            del self._per_loop[old]
        limits = httpx.Limits(
            max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
        )
        client = httpx.AsyncClient(
            headers=self._headers, timeout=httpx.Timeout(self.timeout), limits=limits
        )
        res = self._per_loop[loop] = _LoopResources(client, asyncio.Semaphore(self.max_concurrency))
        return res

    def _request_body(self, conv: Conversation, config: GenerationConfig) -> dict[str, Any]:
        messages = [
            {"role": self.tool_role if m.role == "tool" else m.role, "content": m.content}
            for m in conv
        ]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.max_tokens_param: config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        stops = [s for s in config.stop if s]
        if stops:
            body["stop"] = stops[:_MAX_SERVER_STOPS]
        if config.seed is not None:
            body["seed"] = config.seed
        if config.logprobs:
            # llama-cpp-python returns logprobs only when top_logprobs is set; 0 is valid
            # for OpenAI and vLLM too and keeps the reply small.
            body["logprobs"] = True
            body["top_logprobs"] = 0
        body.update(self.extra_body)
        return body

    async def _complete(
        self, res: _LoopResources, conv: Conversation, config: GenerationConfig
    ) -> Completion:
        body = self._request_body(conv, config)
        url = f"{self.base_url}/chat/completions"
        async with res.semaphore:
            for attempt in range(self.max_retries + 1):
                try:
                    data = await self._attempt(res.client, url, body)
                except _RetryableError as e:
                    if attempt == self.max_retries:
                        raise ModelError(
                            f"{self.id} at {url}: {e} (gave up after {attempt + 1} attempts)"
                        ) from e
                    await asyncio.sleep(self._delay(attempt, e.retry_after))
                else:
                    return self._parse(data, conv, config)
        raise AssertionError("unreachable")  # the loop either returns or raises

    async def _attempt(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Any:
        try:
            resp = await client.post(url, json=body)
        except httpx.TransportError as e:  # connection refused/reset, timeouts
            raise _RetryableError(f"{type(e).__name__}: {e or 'no detail'}") from e
        status = resp.status_code
        if status == 429 or status == 408 or status >= 500:
            raise _RetryableError(
                f"HTTP {status}: {_server_message(resp)}", _retry_after(resp.headers)
            )
        if status >= 400:
            message = _server_message(resp)
            # A bare "Not Found" is a missing route, not a missing model: usually a base_url
            # without /v1.
            hint = ""
            if status == 404 and message.strip().lower() in ("not found", "404 page not found"):
                hint = " (is base_url right? it should end in /v1, e.g. http://host:8000/v1)"
            raise ModelError(f"{self.id} at {url}: HTTP {status}: {message}{hint}")
        try:
            return resp.json()
        except ValueError as e:
            raise ModelError(f"{self.id} at {url}: reply is not JSON: {resp.text[:300]!r}") from e

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        # "Equal jitter" (AWS architecture blog, "Exponential Backoff And Jitter"): random
        # enough to spread a burst of 429s, never so short that it retries at once.
        step = min(self.backoff_max, self.backoff_base * 2**attempt)
        return step * (0.5 + 0.5 * self._rng.random())

    def _parse(self, data: Any, conv: Conversation, config: GenerationConfig) -> Completion:
        try:
            choice = data["choices"][0]
            raw_text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise ModelError(
                f"{self.id}: malformed reply without choices[0].message: {data!r:.300}"
            ) from e
        text, cut = apply_stop(str(raw_text), config.stop)

        logprobs: list[float] | None = None
        if config.logprobs:
            entries = ((choice.get("logprobs") or {}).get("content")) or None
            if entries is not None:
                try:
                    logprobs = [float(e["logprob"]) for e in entries]
                except (KeyError, TypeError, ValueError) as e:
                    raise ModelError(f"{self.id}: malformed logprobs: {entries!r:.300}") from e

        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = (
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
        )
        estimated = not (isinstance(prompt_tokens, int) and isinstance(completion_tokens, int))
        if not isinstance(prompt_tokens, int):
            prompt_tokens = sum(_estimate_tokens(m.content) + 4 for m in conv)
        if not isinstance(completion_tokens, int):
            completion_tokens = (
                len(logprobs) if logprobs is not None else _estimate_tokens(raw_text)
            )

        reason = choice.get("finish_reason")
        finish: FinishReason
        if cut or (reason is not None and reason != "length"):
            finish = "stop"
        elif reason == "length" or completion_tokens >= config.max_new_tokens:
            finish = "length"
        else:
            finish = "stop"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=max(0, prompt_tokens),
            completion_tokens=max(0, completion_tokens),
            estimated_tokens=estimated,
            token_ids=None,
            logprobs=logprobs,
        )


def _estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _server_message(resp: httpx.Response) -> str:
    """The error text a server sent: OpenAI's ``error.message``, FastAPI's ``detail``, or raw text."""
    try:
        data: Any = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    if isinstance(data, dict):
        err: Any = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("error", "detail", "message"):
            if data.get(key):
                return str(data[key])[:500]
    return str(data)[:500]


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

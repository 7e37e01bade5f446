"""Run the environment server with uvicorn (used by ``palaestra serve-env`` and ``python -m``).

Besides starting uvicorn, this is where the operator's choices are checked:
the server will not listen beyond loopback without a token unless told
``insecure=True`` (:func:`check_bind`), and ``--env-kwargs ID=JSON`` strings
become the server-side constructor arguments (:func:`parse_env_kwargs`).

One tuning beyond uvicorn's defaults: uvicorn writes a response's headers
and its body with two ``transport.write`` calls, i.e. two TCP segments on a
``TCP_NODELAY`` socket, so every small response costs two ``send`` syscalls
here and two wake-ups of the client. :func:`coalescing_protocol` wraps
uvicorn's HTTP protocol so that writes made in one event-loop iteration go
out as one segment; on the 2-core reference machine this took about 15 % off
the server's and 20 % off the client's CPU per step. If uvicorn's internals
change so the wrapper cannot be built, we fall back to the stock protocol.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue

from palaestra.env._registry import register
from palaestra.env.server._exec import Isolation

log = logging.getLogger("palaestra.env.server")


def register_from_specs(specs: Sequence[str]) -> list[str]:
    """Register environments given as ``"ID=module:attr"`` strings; return their ids."""
    ids: list[str] = []
    for item in specs:
        env_id, sep, entry_point = item.partition("=")
        if not sep or ":" not in entry_point:
            raise ValueError(
                f"--register takes ID=module:attr (e.g. toy-v1=palaestra.env._toy:ToyEnv), got {item!r}"
            )
        register(env_id.strip(), entry_point.strip(), override=True, source="serve-env --register")
        ids.append(env_id.strip())
    return ids


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name: it may resolve to anything
        return False


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to serve beyond loopback without a token, unless the operator said ``insecure``."""
    if token or insecure or is_loopback(host):
        return
    raise ValueError(
        f"refusing to listen on {host or 'all interfaces'!r} without a token: anyone who can "
        "reach the port could create environments and run episodes as this user (for "
        "code-v1, run code in its sandbox). Pass --token (or set PALAESTRA_ENV_TOKEN) and "
        "give it to your clients, or --insecure if everyone on this network is trusted."
    )


def parse_env_kwargs(items: Sequence[str]) -> dict[str, dict[str, JsonValue]]:
    """``["code-v1={\"sandbox\": \"bubblewrap\"}", ...]`` → ``{"code-v1": {...}}``."""
    out: dict[str, dict[str, JsonValue]] = {}
    for item in items:
        env_id, sep, raw = item.partition("=")
        env_id = env_id.strip()
        if not sep or not env_id:
            raise ValueError(
                f'--env-kwargs takes ID=JSON (e.g. code-v1=\'{{"sandbox": "bubblewrap"}}\'), '
                f"got {item!r}"
            )
        try:
            value = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"--env-kwargs {env_id}: not valid JSON ({e}): {raw!r}") from None
        if not isinstance(value, dict):
            raise ValueError(f"--env-kwargs {env_id}: needs a JSON object, got {raw!r}")
        out.setdefault(env_id, {}).update(value)  # pyright: ignore[reportUnknownArgumentType]
    return out


class _CoalescingTransport:
    """Buffers writes until the end of the loop iteration, then sends them as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(bytes(data))

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if data and not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def coalescing_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's default HTTP protocol class, with writes coalesced; ``"auto"`` if unavailable."""
    try:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
    except ImportError:  # pragma: no cover - uvicorn reorganised
        return "auto"
    base: Any = AutoHTTPProtocol
    if not hasattr(base, "connection_made"):  # pragma: no cover
        return "auto"

    class CoalescingHTTPProtocol(base):
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            if getattr(self, "transport", None) is transport:
                self.transport = _CoalescingTransport(transport, asyncio.get_running_loop())

    return CoalescingHTTPProtocol


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    max_envs: int = 64,
    idle_timeout: float = 600,
    request_timeout: float = 30,
    register_specs: Sequence[str] = (),
    isolation: Isolation = "auto",
    env_kwargs: Sequence[str] = (),
    max_body_bytes: int | None = None,
    insecure: bool = False,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Serve the registered environments over HTTP until interrupted.

    ``env_kwargs``: ``ID=JSON`` strings, the server-side constructor arguments
    of environment ``ID``. ``insecure``: allow a non-loopback ``host`` without
    a ``token`` (see :func:`check_bind`). Invalid settings raise ``ValueError``
    before anything listens.
    """
    check_bind(host, token, insecure)
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            'the environment server needs uvicorn; install it with:\npip install "palaestra[web]"'
        ) from e
    from palaestra.env.server._app import MAX_BODY_BYTES, create_app

    register_from_specs(register_specs)
    app = create_app(
        token=token,
        max_envs=max_envs,
        idle_timeout=idle_timeout,
        request_timeout=request_timeout,
        isolation=isolation,
        env_kwargs=parse_env_kwargs(env_kwargs),
        max_body_bytes=MAX_BODY_BYTES if max_body_bytes is None else max_body_bytes,
    )
    if insecure and not token and not is_loopback(host):
        log.warning(
            "serving on %s with no token (--insecure): anyone who can reach it can use it", host
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=coalescing_protocol(),
        log_level=log_level,
        access_log=access_log,
        # Agents think between steps (an LLM call can take a minute): keep
        # connections open across that, so a step costs no TCP handshake.
        timeout_keep_alive=120,
    )

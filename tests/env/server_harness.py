"""Shared by the environment-server tests: a real uvicorn server on loopback in a thread."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any

import uvicorn

from palaestra.env.server import create_app
from palaestra.env.server._serve import coalescing_protocol

#: Set while a ThreadServer shuts down, so hung worker threads of its environments finish.
RELEASE = threading.Event()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn serving ``create_app(**kwargs)`` in a background thread."""

    def __init__(self, keep_alive: float = 5, **kwargs: Any) -> None:
        self.app = create_app(**kwargs)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            port=self.port,
            log_level="warning",
            access_log=False,
            http=coalescing_protocol(),
            timeout_keep_alive=keep_alive,  # pyright: ignore[reportArgumentType]
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        RELEASE.set()
        self.server.should_exit = True
        self.thread.join(10)
        RELEASE.clear()


class KeepAlive:
    """One HTTP/1.1 connection that must survive every response (no silent reconnects)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.sock = self.conn.sock

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send on the same socket; fails if the server closed it after the last response."""
        assert self.conn.sock is self.sock, "the server closed the keep-alive connection"
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self.conn.request(method, path, body=body, headers=hdrs)
        response = self.conn.getresponse()
        data = response.read()
        assert not response.will_close, f"{method} {path} -> {response.status}: will close"
        return response.status, data, {k.lower(): v for k, v in response.getheaders()}

    def close(self) -> None:
        self.conn.close()

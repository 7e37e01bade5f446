"""Serve the viewer with uvicorn on a socket we bind ourselves (used by ``palaestra view``).

Binding first, rather than letting uvicorn bind, gives a clear error for a
port in use, lets ``--port 0`` pick a free port, and tells the caller the
real URL before the server starts.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(host).is_unspecified:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    run_dirs: Sequence[str | Path],
    sock: socket.socket,
    *,
    open_browser: bool = False,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve the viewer for ``run_dirs`` on ``sock`` until interrupted.

    On loopback, requests must name a loopback ``Host`` (a web page cannot read
    your trajectories through DNS rebinding).
    """
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            'the trajectory viewer needs uvicorn; install it with:\npip install "palaestra[web]"'
        ) from e
    from palaestra.web._app import create_viewer_app

    host = str(sock.getsockname()[0])
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if is_loopback(host) else None
    app = create_viewer_app(run_dirs, allowed_hosts=allowed)
    url = url_of(sock)
    if on_ready is not None:
        on_ready(url)
    if open_browser:
        # After a beat, so the first request finds the server listening.
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
    server.run(sockets=[sock])

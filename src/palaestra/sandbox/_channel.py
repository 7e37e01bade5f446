"""The host's end of the driver's channel: JSON lines out on a socket (with descriptors), in on a pipe.

The protocol itself is documented in ``_driver.py``. Code inside the sandbox
can write to the reply pipe too, so nothing read here is trusted beyond its
shape: a line that is not a JSON object is dropped, and one longer than
``MAX_MESSAGE_BYTES`` is dropped without being held in memory. Whether a
message answers the request being waited for is the caller's check.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import socket
import time
from collections.abc import Sequence
from typing import Any

MAX_MESSAGE_BYTES = 64 << 20
"""Longest reply line kept (a host-function call's JSON arguments); longer ones are dropped."""


class Died(Exception):
    """The driver's channel closed: the interpreter or the sandbox is gone."""


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        msg: object = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None  # pyright: ignore[reportUnknownVariableType]


class Channel:
    """Requests to the driver on ``req`` (a Unix socket), replies from it on the pipe ``resp_fd``."""

    def __init__(self, req: socket.socket, resp_fd: int) -> None:
        self.req, self.resp_fd = req, resp_fd
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        self._skipping = False  # dropping the rest of an over-long line

    def send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        """Send one request; ``fds`` travel with its first byte (``SCM_RIGHTS``)."""
        data = json.dumps(msg).encode() + b"\n"
        try:
            if fds:
                rights = array.array("i", fds).tobytes()
                n = self.req.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
                data = data[n:]
            self.req.sendall(data)
        except OSError as e:
            raise Died(str(e)) from e

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next well-formed message, or None at the deadline. Raises Died on EOF."""
        while True:
            nl = self._buf.find(b"\n", self._scanned)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                self._scanned = 0
                if self._skipping:
                    self._skipping = False
                    continue
                msg = _decode(line)
                if msg is not None:
                    return msg
                continue
            self._scanned = len(self._buf)
            if self._scanned > MAX_MESSAGE_BYTES:
                self._buf.clear()
                self._scanned, self._skipping = 0, True
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.resp_fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.resp_fd, 1 << 16)
            if not chunk:
                raise Died("the channel closed")
            self._buf += chunk

    def close(self) -> None:
        self.req.close()
        with contextlib.suppress(OSError):
            os.close(self.resp_fd)

"""The persistent interpreter that runs inside a sandbox (stdlib only, any Python >= 3.8).

The host starts it as ``python3 -I -u -c <this file's source> ARGS`` inside the
sandbox; it is not imported by Palaestra itself. It speaks line-delimited JSON
over two dedicated fds (never stdin/stdout, which user code may write to with
``os.write(1, ...)`` or through child processes): requests come on a Unix
socket, replies go out on a pipe.

host -> driver (socket)
    ``{"op": "run", "id": str, "code": str, "host_functions": [name, ...]}``:
    run a cell. ``{"op": "exec", "id": str, "argv": [...], "stdin": str | null,
    "timeout": float}``. Both carry two file descriptors (``SCM_RIGHTS``): the
    files the call's stdout and stderr go to.
    ``{"op": "ping", "id": str}``.
    ``{"op": "return", "value": ...}`` / ``{"op": "raise", "message": str}``:
    the answer to a host-function call.
driver -> host (pipe)
    ``{"op": "ready"}`` once at start; ``{"op": "pong", "id": str}``;
    ``{"op": "call", "name": str, "args": [...], "kwargs": {...}}``;
    ``{"op": "done", "id": str, "exit_code": int | null, "error": str | null}``
    (and ``timed_out`` for exec).

Output never travels in the protocol: fds 1 and 2 of a cell (so child
processes are captured too) are the files the host sent, which it reads
itself, after the reply or after killing a cell that timed out. ``id`` is a
fresh random value per request: the host drops a reply that does not echo the
id of the request it waits for, so code that writes forged replies to the pipe
cannot shift results onto later calls. (Code running in this process can read
the id of the request being served, and so can end its own call early with a
forged status; it cannot put text into any call's output.)

ARGS: ``req_fd resp_fd workdir cpu_seconds nproc`` (``nproc`` 0 = leave
RLIMIT_NPROC alone; the host uses it when the outside uid is not root, where
the kernel honours it).
"""

from __future__ import annotations

import _socket
import ast
import contextlib
import json
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

REQ_FD, RESP_FD = int(sys.argv[1]), int(sys.argv[2])
WORKDIR, CPU_SECONDS, NPROC = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

# `_socket`, not `socket`: the latter costs ~2 ms of start-up for nothing used here.
_req = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, REQ_FD)
_resp = os.fdopen(RESP_FD, "wb", buffering=0)
_ANCILLARY = _socket.CMSG_SPACE(16 * 4)
# Kept apart from the user's namespace so a cell rebinding `json` or `os`
# cannot break the protocol by accident.
_dumps, _loads = json.dumps, json.loads
_buf = b""
_fds: list[int] = []  # received with requests, taken two at a time by run/exec


def _send(msg: dict[str, Any]) -> None:
    _resp.write(_dumps(msg).encode() + b"\n")


def _recv() -> dict[str, Any]:
    global _buf
    while b"\n" not in _buf:
        chunk, ancillary, _, _ = _req.recvmsg(1 << 16, _ANCILLARY, _socket.MSG_CMSG_CLOEXEC)
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                for i in range(0, len(data) - len(data) % 4, 4):
                    _fds.append(int.from_bytes(data[i : i + 4], sys.byteorder, signed=True))
        if not chunk:
            os._exit(0)  # the host closed the channel: nothing left to do
        _buf += chunk
    line, _buf = _buf.split(b"\n", 1)
    return _loads(line)


def _take_fds() -> tuple[int, int, bool]:
    """The two output files sent with the current request (/dev/null if they went missing)."""
    if len(_fds) >= 2:
        # The last two: any older ones came with a request some user thread read instead.
        out, err = _fds[-2:]
        for fd in _fds[:-2]:
            with contextlib.suppress(OSError):
                os.close(fd)
        _fds.clear()
        return out, err, True
    null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    return null, os.dup(null), False


class CpuLimitExceeded(BaseException):
    """Raised in a cell when it used up its CPU budget (SIGXCPU)."""


def _on_xcpu(signum: int, frame: object) -> None:
    raise CpuLimitExceeded(f"the cell exceeded its CPU-time limit of {CPU_SECONDS} s")


def _cpu_used() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _fresh_budget() -> None:
    # The interpreter lives for a whole episode, so its soft CPU limit is moved
    # to "now + budget" before each cell (the host leaves the hard limit open).
    soft = int(_cpu_used()) + CPU_SECONDS + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _child_limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


class _Capture:
    """Points fds 1 and 2 at the host's files for the duration of one cell."""

    def __enter__(self) -> _Capture:
        sys.stdout.flush()
        sys.stderr.flush()
        out, err, self.ok = _take_fds()
        self.saved = os.dup(1), os.dup(2)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])


_globals: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
_cell = [0]


def _stub(name: str) -> Callable[..., object]:
    def call(*args: object, **kwargs: object) -> object:
        try:
            msg = _dumps({"op": "call", "name": name, "args": list(args), "kwargs": kwargs})
        except (TypeError, ValueError) as e:
            raise TypeError(f"arguments of {name}() must be JSON-serialisable: {e}") from None
        _resp.write(msg.encode() + b"\n")
        answer = _recv()
        if answer.get("op") == "raise":
            raise RuntimeError(answer.get("message", ""))
        return answer.get("value")

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"Calls {name}() on the host (arguments and result are JSON)."
    return call


def _format_error(e: BaseException) -> str:
    import traceback  # only on errors: keeps start-up short

    tb = e.__traceback__
    # Drop the driver's own frames: the user sees their cell only.
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    lines = traceback.format_exception(type(e), e, tb)
    text = "".join(lines).rstrip()
    tail = text.splitlines()[-20:]
    return "\n".join(tail)


def _run(rid: object, code: str, host_functions: list[str]) -> dict[str, Any]:
    _cell[0] += 1
    filename = f"<cell-{_cell[0]}>"
    import linecache

    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    stubs = {name: _stub(name) for name in host_functions}
    _globals.update(stubs)
    error = None
    with _Capture() as cap:
        try:
            _fresh_budget()
            tree = ast.parse(code, filename, "exec")
            last = None
            tail = tree.body[-1] if tree.body else None
            if isinstance(tail, ast.Expr):
                tree.body.pop()
                last = ast.Expression(tail.value)
            exec(compile(tree, filename, "exec"), _globals)
            if last is not None:
                value = eval(compile(last, filename, "eval"), _globals)
                if value is not None:
                    print(repr(value))
        except BaseException as e:  # a cell's exception is its result, whatever it is
            error = _format_error(e)
    for name, stub in stubs.items():
        if _globals.get(name) is stub:
            del _globals[name]
    if not cap.ok:
        error = "[sandbox] this cell's output files did not arrive: its output is lost"
    return {"op": "done", "id": rid, "exit_code": 0 if error is None else 1, "error": error}


def _exec(rid: object, argv: list[str], stdin: str | None, timeout: float) -> dict[str, Any]:
    import subprocess  # only for exec(): keeps start-up short

    out_fd, err_fd, _ = _take_fds()
    timed_out = False
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out_fd,
            stderr=err_fd,
            cwd=WORKDIR,
            start_new_session=True,
            preexec_fn=_child_limits,
        )
    except OSError as e:
        with contextlib.suppress(OSError):
            os.write(err_fd, str(e).encode())
        return {"op": "done", "id": rid, "exit_code": 127, "error": None}
    finally:
        os.close(out_fd)
        os.close(err_fd)
    try:
        proc.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    except BrokenPipeError:
        pass
    if timed_out or proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return {
        "op": "done",
        "id": rid,
        "exit_code": None if timed_out else proc.returncode,
        "error": None,
        "timed_out": timed_out,
    }


def main() -> None:
    signal.signal(signal.SIGXCPU, _on_xcpu)
    if NPROC:
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
    os.chdir(WORKDIR)
    sys.path.insert(0, WORKDIR)  # like `python` run in the work directory
    sys.argv = [""]
    _send({"op": "ready", "pid": os.getpid(), "python": sys.version.split()[0]})
    while True:
        req = _recv()
        op, rid = req.get("op"), req.get("id")
        if op == "run":
            _send(_run(rid, req["code"], req.get("host_functions") or []))
        elif op == "exec":
            _send(_exec(rid, req["argv"], req.get("stdin"), float(req.get("timeout", 30))))
        elif op == "ping":
            _send({"op": "pong", "id": rid})
        else:
            _send({"op": "done", "id": rid, "error": f"driver: unknown op {op!r}", "exit_code": 1})


main()

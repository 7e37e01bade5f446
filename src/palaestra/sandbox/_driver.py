"""The persistent interpreter that runs inside a sandbox (stdlib only, any Python >= 3.8).

The host starts it as ``python3 -I -u -c <this file's source> ARGS`` inside the
sandbox; it is not imported by Palaestra itself. It speaks line-delimited JSON
over two dedicated pipe fds (never stdin/stdout, which user code may write to
with ``os.write(1, ...)`` or through child processes):

host -> driver
    ``{"op": "run", "code": str, "host_functions": [name, ...]}``: run a cell.
    ``{"op": "exec", "argv": [...], "stdin": str | null, "timeout": float}``.
    ``{"op": "ping"}``.
    ``{"op": "return", "value": ...}`` / ``{"op": "raise", "message": str}``:
    the answer to a host-function call.
driver -> host
    ``{"op": "ready"}`` once at start; ``{"op": "pong"}``;
    ``{"op": "call", "name": str, "args": [...], "kwargs": {...}}``;
    ``{"op": "done", ...}`` with ``stdout``, ``stderr``, ``truncated``,
    ``exit_code``, ``error`` (and ``timed_out`` for exec).

A cell's output (fd 1 and fd 2, so child processes are captured too) goes to
fresh files in the scratch directory, read back capped at ``output_bytes``;
the host can read them after killing a cell that timed out.

ARGS: ``req_fd resp_fd scratch_dir workdir output_bytes cpu_seconds nproc``
(``nproc`` 0 = leave RLIMIT_NPROC alone; the host uses it when the outside
uid is not root, where the kernel honours it).
"""

from __future__ import annotations

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
SCRATCH, WORKDIR = sys.argv[3], sys.argv[4]
OUTPUT_BYTES, CPU_SECONDS, NPROC = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])

_req = os.fdopen(REQ_FD, "rb", buffering=0)
_resp = os.fdopen(RESP_FD, "wb", buffering=0)
# Kept apart from the user's namespace so a cell rebinding `json` or `os`
# cannot break the protocol by accident.
_dumps, _loads = json.dumps, json.loads
_buf = b""


def _send(msg: dict[str, Any]) -> None:
    _resp.write(_dumps(msg).encode() + b"\n")


def _recv() -> dict[str, Any]:
    global _buf
    while b"\n" not in _buf:
        chunk = os.read(REQ_FD, 1 << 16)
        if not chunk:
            os._exit(0)  # the host closed the channel: nothing left to do
        _buf += chunk
    line, _buf = _buf.split(b"\n", 1)
    return _loads(line)


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


def _open_capture(name: str) -> int:
    path = os.path.join(SCRATCH, name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # background writers of the last cell keep the old inode
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)


def _read_capture(fd: int) -> tuple[str, bool]:
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, OUTPUT_BYTES) if OUTPUT_BYTES else b""
    os.close(fd)
    return data.decode("utf-8", "replace"), size > OUTPUT_BYTES


class _Capture:
    """Points fds 1 and 2 at fresh files for the duration of one cell."""

    def __enter__(self) -> _Capture:
        sys.stdout.flush()
        sys.stderr.flush()
        self.out, self.err = _open_capture("cell.out"), _open_capture("cell.err")
        self.saved = os.dup(1), os.dup(2)
        os.dup2(self.out, 1)
        os.dup2(self.err, 2)
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])

    def result(self) -> dict[str, Any]:
        stdout, t1 = _read_capture(self.out)
        stderr, t2 = _read_capture(self.err)
        return {"stdout": stdout, "stderr": stderr, "truncated": t1 or t2}


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


def _run(code: str, host_functions: list[str]) -> dict[str, Any]:
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
    out = cap.result()
    out.update(op="done", exit_code=0 if error is None else 1, error=error)
    return out


def _exec(argv: list[str], stdin: str | None, timeout: float) -> dict[str, Any]:
    import subprocess  # only for exec(): keeps start-up short

    out_fd, err_fd = _open_capture("exec.out"), _open_capture("exec.err")
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
        os.close(out_fd)
        os.close(err_fd)
        return {"op": "done", "stdout": "", "stderr": str(e), "exit_code": 127, "truncated": False}
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
    stdout, t1 = _read_capture(out_fd)
    stderr, t2 = _read_capture(err_fd)
    return {
        "op": "done",
        "stdout": stdout,
        "stderr": stderr,
        "truncated": t1 or t2,
        "exit_code": None if timed_out else proc.returncode,
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
        op = req.get("op")
        if op == "run":
            _send(_run(req["code"], req.get("host_functions") or []))
        elif op == "exec":
            _send(_exec(req["argv"], req.get("stdin"), float(req.get("timeout", 30))))
        elif op == "ping":
            _send({"op": "pong"})
        else:
            _send({"op": "done", "error": f"driver: unknown op {op!r}", "exit_code": 1})


main()

"""The machinery every backend shares: the driver process, its JSON channel, limits, cleanup.

A backend only says how to wrap the driver's command line (``_wrap``) and
where the work directory is inside (``workdir``). This class starts the
driver (``_driver.py``, run by the system ``python3 -I -u``) with a request
socket and a reply pipe, applies the rlimits in a pre-exec hook, puts the
process tree in a per-sandbox ``pids`` cgroup, enforces wall-clock timeouts
from outside, and turns every way the sandbox can die into
``SandboxUnavailable``.

Nothing the sandboxed code sends is trusted beyond "what this call did": a
call's output is read from files the host created and kept descriptors to
(``_hostfs.OutputFile``), never from a path inside; a reply counts only if it
echoes the random id of the request it answers (``_answers``); malformed
lines are dropped (``_channel.py``).

Every interpreter (the first, and each relaunch after a timeout or a host
failure) is forked by one long-lived thread per sandbox (``_Launcher``), not
by whichever thread called: the kill-on-parent-death signal
(``PR_SET_PDEATHSIG``) fires when the forking *thread* ends, so a relaunch
from a short-lived caller thread (CodeAct runs each cell in one) would leave
an interpreter that dies as soon as that thread returns. The launcher lives
until ``close``, so the signal fires only when the sandbox's owner goes.

Process-count limits, in order of preference:

1. ``cgroup``: a per-sandbox ``pids`` cgroup with ``pids.max`` (needs write
   access to the cgroup tree: root in CI, or a delegated subtree).
2. ``nproc``: the outside uid is not root, so RLIMIT_NPROC works; the driver
   sets it *inside* the sandbox's user namespace, where the count is per
   sandbox rather than per host user.
3. ``nobody`` (isolating backends only): root without a usable cgroup drops to
   uid/gid 65534 before starting the isolation tool, then as 2.
4. otherwise ``start`` refuses with SandboxUnavailable, unless the environment
   variable ``PALAESTRA_SANDBOX_NO_PIDS_LIMIT=1`` acknowledges running without
   a process limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import queue
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

from palaestra.errors import EnvError
from palaestra.sandbox._cgroup import PidsCgroup, cgroup_problem
from palaestra.sandbox._channel import Channel, Died
from palaestra.sandbox._core import (
    ExecResult,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)
from palaestra.sandbox._hostfs import OutputFile, open_beneath, read_fd

DRIVER_SOURCE = (Path(__file__).parent / "_driver.py").read_text()
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534
START_TIMEOUT_S = 20.0
_MIN_FREE_BYTES = 1 << 20
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
PidsMode = Literal["cgroup", "nproc", "nobody", "none"]


def _answers(msg: dict[str, Any], rid: str) -> bool:
    """Whether ``msg`` is the reply to the request with id ``rid`` (not a stale or forged one)."""
    return msg.get("id") == rid


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Launcher:
    """A thread that runs the sandbox's launches, alive from ``start`` to ``close``."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, done = job
            try:
                fn()
            except BaseException as e:  # handed back to the caller, which re-raises
                done.set_exception(e)
            else:
                done.set_result(None)

    def run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the launcher thread and wait for it; its exception is raised here."""
        if threading.current_thread() is self._thread:
            fn()
            return
        if not self._thread.is_alive():
            raise SandboxError("the sandbox's launcher thread has stopped")
        done: Future[None] = Future()
        self._jobs.put((fn, done))
        done.result()

    def stop(self) -> None:
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)


def python_executable() -> str:
    """The interpreter run inside sandboxes: the system one, never the project's venv."""
    return SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else shutil.which("python3") or ""


class ProcessSandbox(Sandbox):
    """A sandbox made of one driver process tree; subclasses choose the isolation."""

    backend = "process"
    isolating = True
    """Whether the backend confines the process (False for unsafe-local)."""

    def __init__(
        self, limits: SandboxLimits | None = None, *, _force_pids_mode: PidsMode | None = None
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.id = f"sbx-{uuid.uuid4().hex[:12]}"
        self._force_pids_mode: PidsMode | None = _force_pids_mode
        self._host_root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cgroup: PidsCgroup | None = None
        self._chan: Channel | None = None
        self._launcher: _Launcher | None = None
        self._closed = False
        self._dead: str | None = None
        self.pids_mode: PidsMode = "none"
        self.driver_pid: int | None = None
        """The interpreter's pid as seen from inside (tests kill it to simulate death)."""

    # ---- backend hooks ------------------------------------------------------------------

    def _wrap(self, argv: list[str]) -> list[str]:
        """The command that runs ``argv`` (the driver) inside the isolation."""
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": self.workdir,
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
            # The marker the probe suite and `close` use to find stray processes.
            "PALAESTRA_SANDBOX": self.id,
        }

    # ---- host layout ----------------------------------------------------------------------

    @property
    def host_workdir(self) -> Path:
        """The work directory's path on the host."""
        if self._host_root is None:
            raise SandboxError(f"{self.backend} sandbox: call start() first")
        return self._host_root / "work"

    @property
    def host_scratch(self) -> Path:
        """A host temp dir, ``TMPDIR`` of ``unsafe-local`` (never mounted in an isolating one)."""
        if self._host_root is None:
            raise SandboxError(f"{self.backend} sandbox: call start() first")
        return self._host_root / "scratch"

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox {self.id} was closed; open a new one")
        if self._proc is not None:
            return
        self._host_root = Path(tempfile.mkdtemp(prefix=f"palaestra-{self.id}-"))
        self.host_workdir.mkdir()
        if not self.isolating:
            self.workdir = str(self.host_workdir)
            self.host_scratch.mkdir()
        self.pids_mode = self._choose_pids_mode()
        if self.pids_mode == "nobody":
            for p in (self._host_root, self.host_workdir):
                os.chown(p, NOBODY, NOBODY)
        try:
            self._launch()
        except BaseException:
            self.close()
            raise

    def _choose_pids_mode(self) -> PidsMode:
        if self._force_pids_mode is not None:
            return self._force_pids_mode
        if cgroup_problem() is None:
            return "cgroup"
        if os.geteuid() != 0:
            return "nproc"
        if self.isolating:
            return "nobody"
        if os.environ.get("PALAESTRA_SANDBOX_NO_PIDS_LIMIT") == "1":
            return "none"
        raise SandboxUnavailable(
            f"{self.backend} sandbox: cannot limit the number of processes: running as root "
            f"(RLIMIT_NPROC is ignored) and {cgroup_problem()}. Give this user write access to "
            "a cgroup with the pids controller, run as a non-root user, or set "
            "PALAESTRA_SANDBOX_NO_PIDS_LIMIT=1 to accept running without a process limit."
        )

    def _launch(self) -> None:
        """Start the interpreter, from the launcher thread (see the module docstring)."""
        if self._launcher is None:
            self._launcher = _Launcher(f"palaestra-{self.id}-launcher")
        self._launcher.run(self._launch_here)

    def _launch_here(self) -> None:
        if self.pids_mode == "cgroup":
            self._cgroup = PidsCgroup(self.id, self.limits.max_processes)
        # Requests go on a socket because they carry descriptors (a call's output files).
        req, req_inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        resp_r, resp_w = os.pipe()
        nproc = self.limits.max_processes if self.pids_mode in ("nproc", "nobody") else 0
        driver = [
            python_executable(), "-I", "-u", "-c", DRIVER_SOURCE,
            str(req_inside.fileno()), str(resp_w), self.workdir,
            str(self.limits.cpu_seconds), str(nproc),
        ]  # fmt: skip
        assert self._host_root is not None
        try:
            with open(self._host_root / "sandbox.log", "wb") as log:
                self._proc = subprocess.Popen(
                    self._wrap(driver),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(req_inside.fileno(), resp_w),
                    env=self._env(),
                    cwd=str(self.host_workdir),
                    start_new_session=True,
                    preexec_fn=self._preexec,
                )
        except OSError as e:
            req.close()
            os.close(resp_r)
            raise SandboxUnavailable(f"{self.backend} sandbox failed to start: {e}") from e
        finally:
            req_inside.close()
            os.close(resp_w)
        self._chan = Channel(req, resp_r)
        try:
            msg = self._read(time.monotonic() + START_TIMEOUT_S)
            why = f"no answer within {START_TIMEOUT_S:g} s"
        except Died:
            msg, why = None, "it exited"
        if msg is None or msg.get("op") != "ready":
            self._kill()
            raise SandboxUnavailable(
                f"{self.backend} sandbox failed to start ({why}): {self._log_tail() or 'no output'}"
            )
        self.driver_pid = _int_or_none(msg.get("pid"))

    def _preexec(self) -> None:
        """Runs in the child between fork and exec: limits, cgroup, uid."""
        lim = self.limits
        # CPU: the hard limit stays open so the persistent driver can give each cell
        # a fresh soft budget; exec() children get soft = hard from the driver.
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, resource.RLIM_INFINITY))
        mem = lim.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        size = lim.file_size_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # If the host dies, the sandbox dies with it (bubblewrap's --die-with-parent
        # covers its own child; this covers the wrapper itself, for every backend).
        # The signal is armed against the forking thread: the launcher, alive until close.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if self._cgroup is not None:
            self._cgroup.join_self()
        if self.pids_mode == "nobody":
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    def _log_tail(self) -> str:
        if self._host_root is None:
            return ""
        try:  # the sandbox writes this file: read only its end
            with open(self._host_root / "sandbox.log", "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
                text = f.read(4096).decode(errors="replace")
        except OSError:
            return ""
        return text.strip()[-1500:]

    def _kill(self) -> None:
        """Kill the whole process tree (cgroup, process group, the wrapper) and the channel."""
        proc = self._proc
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if self._chan is not None:
            self._chan.close()
            self._chan = None
        self._proc = None

    def close(self) -> None:
        self._closed = True
        self._kill()
        if self._launcher is not None:
            self._launcher.stop()
            self._launcher = None
        if self._host_root is not None:
            shutil.rmtree(self._host_root, ignore_errors=True)

    def _restart(self) -> None:
        self._kill()
        self._launch()

    # ---- the channel ----------------------------------------------------------------------

    def _send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        if self._chan is None:
            raise Died("the channel is closed")
        self._chan.send(msg, fds)

    def _read(self, deadline: float) -> dict[str, Any] | None:
        if self._chan is None:
            raise Died("the channel is closed")
        return self._chan.read(deadline)

    def _await(
        self,
        rid: str,
        deadline: float,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> dict[str, Any] | None:
        """The reply to request ``rid`` (None at the deadline), serving host-function calls.

        Replies to other requests (stale, or forged by code inside) are
        dropped. ``functions`` None: no cell is running, so a call (from a
        thread an earlier cell left behind) is answered with an error.
        """
        while True:
            msg = self._read(deadline)
            if msg is None:
                return None
            if msg.get("op") == "call":
                if functions is None:
                    self._send({"op": "raise", "message": "no python() cell is running"})
                else:
                    self._send(self._call_host(functions, msg))
            elif _answers(msg, rid):
                return msg

    def _unavailable(self, what: str) -> SandboxUnavailable:
        code = self._proc.poll() if self._proc is not None else None
        detail = f" (exit status {code})" if code is not None else ""
        tail = self._log_tail()
        self._kill()
        self._dead = f"{self.backend} sandbox {self.id}: {what}{detail}" + (
            f"; log: {tail}" if tail else ""
        )
        return SandboxUnavailable(self._dead)

    def _check(self) -> None:
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox {self.id} is closed")
        if self._dead is not None:
            raise SandboxUnavailable(self._dead)
        if self._proc is None:
            if self._host_root is None:
                raise SandboxError(f"{self.backend} sandbox: call start() (or use `with`) first")
            raise SandboxUnavailable(f"{self.backend} sandbox {self.id} is not running")
        if not self.host_workdir.is_dir():
            raise self._unavailable(f"the work directory {self.host_workdir} was deleted")
        if shutil.disk_usage(self.host_workdir).free < _MIN_FREE_BYTES:
            raise self._unavailable(f"the disk holding {self.host_workdir} is full")
        if self._proc.poll() is not None:
            raise self._unavailable("the interpreter died")

    def healthy(self) -> bool:
        rid = secrets.token_hex(8)
        try:
            self._check()
            self._send({"op": "ping", "id": rid})
            msg = self._await(rid, time.monotonic() + 2.0)
        except (SandboxError, Died):
            return False
        return msg is not None and msg.get("op") == "pong"

    # ---- running code -----------------------------------------------------------------------

    def python(
        self,
        code: str,
        *,
        timeout: float = 10.0,
        host_functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> ExecResult:
        self._check()
        functions = dict(host_functions or {})
        t0 = time.monotonic()
        rid = secrets.token_hex(8)
        out, err = OutputFile("stdout"), OutputFile("stderr")
        try:
            self._send(
                {"op": "run", "id": rid, "code": code, "host_functions": list(functions)},
                (out.fd, err.fd),
            )
            msg = self._await(rid, t0 + timeout, functions)
            if msg is None:
                return self._timed_out(out, err, timeout, t0, restart_note=True)
            stdout, t1 = out.read(self.limits.output_bytes)
            stderr, t2 = err.read(self.limits.output_bytes)
            error = msg.get("error")
            return ExecResult(
                stdout=stdout,
                stderr=stderr,
                exit_code=_int_or_none(msg.get("exit_code")),
                truncated=t1 or t2,
                error=error if isinstance(error, str) or error is None else str(error),
                duration_s=time.monotonic() - t0,
            )
        except Died:
            raise self._unavailable("the interpreter died") from None
        finally:
            out.close()
            err.close()

    def _call_host(
        self, functions: Mapping[str, Callable[..., Any]], msg: dict[str, Any]
    ) -> dict[str, Any]:
        name = str(msg.get("name"))
        fn = functions.get(name)
        if fn is None:
            return {"op": "raise", "message": f"no host function named {name!r}"}
        try:
            value = fn(*msg.get("args", []), **msg.get("kwargs", {}))
        except EnvError:
            # An infrastructure failure on the host side: the cell is waiting for an
            # answer it will never get, so the interpreter is restarted before raising.
            self._restart()
            raise
        except Exception as e:
            return {"op": "raise", "message": str(e) or type(e).__name__}
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            return {"op": "raise", "message": f"{name}() returned a value that is not JSON: {e}"}
        return {"op": "return", "value": value}

    def _timed_out(
        self, out: OutputFile, err: OutputFile, timeout: float, t0: float, *, restart_note: bool
    ) -> ExecResult:
        self._kill()
        # Partial output, from the host's own descriptors: nothing the code could swap.
        (stdout, _), (stderr, _) = (
            out.read(self.limits.output_bytes),
            err.read(self.limits.output_bytes),
        )
        note = f"[sandbox] timed out after {timeout:g} s"
        if restart_note:
            note += "; the interpreter was restarted and its variables are lost"
        try:
            self._launch()
        except SandboxUnavailable as e:
            raise SandboxUnavailable(f"{e} (while restarting after a timeout)") from None
        return ExecResult(
            stdout=stdout,
            stderr=(stderr + ("\n" if stderr and not stderr.endswith("\n") else "") + note),
            exit_code=None,
            timed_out=True,
            duration_s=time.monotonic() - t0,
        )

    def exec(
        self, command: str | Sequence[str], *, timeout: float = 30.0, stdin: str | None = None
    ) -> ExecResult:
        self._check()
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise ValueError("exec(): empty command")
        t0 = time.monotonic()
        rid = secrets.token_hex(8)
        out, err = OutputFile("stdout"), OutputFile("stderr")
        try:
            request = {"op": "exec", "id": rid, "argv": argv, "stdin": stdin, "timeout": timeout}
            self._send(request, (out.fd, err.fd))
            # The driver kills the command at `timeout`; the margin covers a wedged driver.
            msg = self._await(rid, t0 + timeout + 5.0)
            if msg is None:
                return self._timed_out(out, err, timeout, t0, restart_note=True)
            stdout, t1 = out.read(self.limits.output_bytes)
            stderr, t2 = err.read(self.limits.output_bytes)
        except Died:
            raise self._unavailable("the interpreter died") from None
        finally:
            out.close()
            err.close()
        timed_out = msg.get("timed_out") is True
        if timed_out:
            stderr += ("\n" if stderr and not stderr.endswith("\n") else "") + (
                f"[sandbox] timed out after {timeout:g} s; the command was killed"
            )
        return ExecResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=None if timed_out else _int_or_none(msg.get("exit_code")),
            timed_out=timed_out,
            truncated=t1 or t2,
            duration_s=time.monotonic() - t0,
        )

    # ---- files --------------------------------------------------------------------------------

    def _host_path(self, path: str) -> Path:
        root = self.host_workdir
        inside = Path(self.workdir)
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.relative_to(inside)
            except ValueError:
                raise ValueError(
                    f"path {path!r} is outside the work directory {self.workdir}"
                ) from None
        host = Path(os.path.normpath(root / p))
        if host != root and root not in host.parents:
            raise ValueError(f"path {path!r} is outside the work directory {self.workdir}")
        return host

    def _owners(self) -> tuple[int, ...]:
        """The uids a work-directory file may have: the host's, and the sandbox's."""
        return (os.geteuid(), NOBODY) if self.pids_mode == "nobody" else (os.geteuid(),)

    def _open(self, path: str, flags: int, *, make_dirs: bool = False) -> int:
        """Open a work-directory file the safe way (``_hostfs.open_beneath``)."""
        parts = self._host_path(path).relative_to(self.host_workdir).parts
        if not parts:
            raise IsADirectoryError(f"{path!r} is the work directory itself")
        return open_beneath(
            self.host_workdir,
            parts,
            flags,
            owners=self._owners(),
            make_dirs=make_dirs,
            chown_to=NOBODY if self.pids_mode == "nobody" else None,
        )

    def read_file(self, path: str) -> bytes:
        self._check_started()
        fd = self._open(path, os.O_RDONLY)
        try:
            return read_fd(fd)
        finally:
            os.close(fd)

    def write_file(self, path: str, data: str | bytes) -> None:
        self._check_started()
        fd = self._open(path, os.O_WRONLY | os.O_CREAT, make_dirs=True)
        try:
            os.ftruncate(fd, 0)
            if self.pids_mode == "nobody":
                os.fchown(fd, NOBODY, NOBODY)
            # Blocking again: the open was non-blocking only so a FIFO could not hang it.
            os.set_blocking(fd, True)
            view = memoryview(data.encode() if isinstance(data, str) else data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _check_started(self) -> None:
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox {self.id} is closed")
        if self._host_root is None:
            raise SandboxError(f"{self.backend} sandbox: call start() (or use `with`) first")
        if not self.host_workdir.is_dir():
            raise self._unavailable(f"the work directory {self.host_workdir} was deleted")

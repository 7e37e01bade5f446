"""The sandbox contract: `SandboxLimits`, `ExecResult`, the errors and the `Sandbox` interface.

Modelled on Inspect's sandbox API (``inspect_ai.util.SandboxEnvironment``:
``exec``, ``read_file``, ``write_file``, lifecycle), with one addition that
CodeAct ("Executable Code Actions Elicit Better LLM Agents", Wang et al. 2024)
needs: a *persistent* Python interpreter per sandbox (:meth:`Sandbox.python`),
so variables survive between the code actions of one episode, and host
functions callable from inside it (how an environment exposes its actions as
Python calls). Inspect has no persistent interpreter; we add it rather than
re-running the whole history each turn, which would repeat side effects.

Semantics
---------
One sandbox per episode. ``start`` creates it (fresh work directory, fresh
interpreter); ``close`` kills every process it started and deletes the work
directory; both are idempotent through the context manager.

A model's code failing (exception, non-zero exit, timeout, output too long) is
an ordinary :class:`ExecResult`: an observation for the agent. The sandbox
itself failing (interpreter killed from outside, work directory deleted, disk
exhausted, the isolation tool crashing) raises :class:`SandboxUnavailable`,
which callers record as the ``error`` outcome ``sandbox_unavailable``; it is an
:class:`~palaestra.env.EnvError`, so an environment that lets it propagate is
handled correctly by the rollout engine. Misuse (``python`` before ``start``)
raises :class:`SandboxError`.

A sandbox is not thread-safe: one episode drives it at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Defined in palaestra/errors.py with every other exception; re-exported from here, where
# they were defined before (palaestra.sandbox re-exports them too).
from palaestra.errors import NoSandboxBackend as NoSandboxBackend
from palaestra.errors import SandboxError as SandboxError
from palaestra.errors import SandboxUnavailable as SandboxUnavailable


class SandboxLimits(BaseModel):
    """Resource limits applied to everything that runs inside a sandbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds: int = Field(default=30, ge=1)
    """CPU seconds per process (RLIMIT_CPU). The persistent interpreter gets a
    fresh budget of this size for every ``python()`` call."""
    memory_mb: int = Field(default=1024, ge=64)
    """Address space per process in MiB (RLIMIT_AS)."""
    file_size_mb: int = Field(default=64, ge=1)
    """Largest file a process may write, in MiB (RLIMIT_FSIZE); also the size of
    the private ``/tmp`` (a tmpfs) under bubblewrap."""
    max_processes: int = Field(default=64, ge=4)
    """Processes and threads alive at once in the sandbox: a cgroup ``pids.max``
    (as root), or RLIMIT_NPROC for a non-root outside uid (which the kernel
    ignores for root)."""
    output_bytes: int = Field(default=16_000, ge=0)
    """Cap on stdout and on stderr of one call, each; longer output is cut and
    the result is marked ``truncated``."""


class ExecResult(BaseModel):
    """What one ``exec()`` or ``python()`` call produced."""

    stdout: str
    stderr: str
    exit_code: int | None
    """The process's exit status (``python()``: 0, or 1 after an exception);
    ``None`` when the call was killed by its timeout."""
    timed_out: bool = False
    truncated: bool = False
    """stdout or stderr was cut at ``SandboxLimits.output_bytes``."""
    duration_s: float
    error: str | None = None
    """For ``python()``: the exception, formatted (the last traceback lines)."""

    @property
    def ok(self) -> bool:
        """Exit 0, no exception, not timed out."""
        return self.exit_code == 0 and self.error is None and not self.timed_out


class Sandbox(ABC):
    """An isolated place to run a model's code: one per episode."""

    backend: str
    """``"bubblewrap"``, ``"unshare"`` or ``"unsafe-local"``."""
    workdir: str
    """The writable work directory as seen from inside (``"/work"`` when isolated)."""

    @abstractmethod
    def start(self) -> None:
        """Create the sandbox and its interpreter. Raises SandboxUnavailable if that fails."""

    @abstractmethod
    def close(self) -> None:
        """Kill everything the sandbox started and delete its work directory. Idempotent."""

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def healthy(self) -> bool:
        """Cheap check that the sandbox and its interpreter are alive."""

    @abstractmethod
    def exec(
        self, command: str | Sequence[str], *, timeout: float = 30.0, stdin: str | None = None
    ) -> ExecResult:
        """Run a fresh process in the sandbox: a ``str`` through ``/bin/sh -c``, a sequence as argv.

        The working directory is :attr:`workdir`. On timeout the process group
        is killed and ``exit_code`` is ``None``.
        """

    @abstractmethod
    def python(
        self,
        code: str,
        *,
        timeout: float = 10.0,
        host_functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> ExecResult:
        """Run ``code`` in the sandbox's persistent interpreter, like a notebook cell.

        Globals survive between calls. If the last statement is an expression
        its ``repr`` is appended to stdout (unless it is ``None``). An
        exception is returned in ``error``, never raised. ``host_functions``
        are bound, for this call, to stubs that call back to the host
        synchronously with JSON arguments and result; an exception in the host
        callable is raised inside as ``RuntimeError(message)``. On timeout the
        interpreter is killed and restarted (globals are lost; stderr says so).
        Raises SandboxUnavailable if the interpreter died unexpectedly.
        """

    @abstractmethod
    def read_file(self, path: str) -> bytes:
        """Read a file of the work directory (``path`` relative to it, or absolute inside it)."""

    @abstractmethod
    def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file of the work directory, creating parent directories."""

"""How the server runs a call into an environment under its request timeout.

Three ways, chosen by ``isolation``:

``"signal"``
    The call runs on the event loop, and a ``SIGALRM`` timer interrupts it at
    the deadline by raising :class:`CallTimeout` in it. No thread hop, so it is
    the fastest mode with a timeout (about a quarter less server CPU per step
    than ``"thread"`` on the 2-core reference machine, and no GIL hand-offs
    between threads, which cost more than that in latency under load). Needs
    Unix and the event loop in the main thread (``palaestra serve-env``). It
    cannot interrupt C code that never returns to the interpreter, and an
    environment that uses ``SIGALRM`` itself needs ``"thread"``.
``"thread"``
    Each environment has its own daemon worker thread; the loop waits for the
    result with a deadline. A call that never returns costs only its thread,
    and the server keeps serving whatever the call is stuck in.
``"none"``
    On the event loop with no timeout: for trusted, fast environments.

``"auto"`` is ``"signal"`` where it is possible, else ``"thread"``.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Literal, TypeVar

from palaestra.env._core import EnvError

T = TypeVar("T")

Isolation = Literal["auto", "signal", "thread", "none"]
Mode = Literal["signal", "thread", "none"]


class CallTimeout(BaseException):
    """Our deadline passed.

    A ``BaseException``, so environment code's ``except Exception`` cannot
    swallow it in signal mode, and distinct from a ``TimeoutError`` that the
    environment raises itself.
    """


def signal_mode_possible() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class SignalTimer:
    """Runs calls on the current (main) thread, interrupted by SIGALRM after ``timeout`` s."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._armed = False
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed and signal_mode_possible():
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            self._installed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        # Only while a call runs: a late signal after the call returned is ignored.
        if self._armed:
            self._armed = False
            raise CallTimeout

    def run(self, fn: Callable[[], T]) -> T:
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            return fn()
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)


class Worker:
    """One daemon thread that runs one environment's calls, in order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[
            tuple[Callable[[], object], asyncio.Future[object], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        # Daemon: a call that never returns must not keep the process alive at exit.
        threading.Thread(target=self._run, name=name, daemon=True).start()

    async def run(self, fn: Callable[[], T], timeout: float) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put((fn, fut, loop))
        # A bare timer on the future is the cheapest deadline (wait_for wraps it in a task).
        timer = loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, fut, loop = item
            try:
                result, error = fn(), None
            except Exception as e:  # delivered to the awaiting request, not lost
                result, error = None, e
            except BaseException as e:  # sys.exit() in env code must not pass for a result
                result, error = None, EnvError(f"the environment raised {type(e).__name__}: {e}")
            try:
                loop.call_soon_threadsafe(_resolve, fut, result, error)
            except RuntimeError:  # the loop is closed: the server is shutting down
                return


def _resolve(fut: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if fut.done():  # the request timed out and gave up on this call
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _expire(fut: asyncio.Future[object]) -> None:
    if not fut.done():
        fut.set_exception(CallTimeout())

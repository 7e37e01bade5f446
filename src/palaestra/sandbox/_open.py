"""Choosing a backend: `open_sandbox` and `available_backends`.

``"auto"`` takes bubblewrap if it works here, else ``unshare``, else raises
:class:`NoSandboxBackend` naming what to install. It never falls back to
running code unsandboxed: ``unsafe-local`` must be asked for by name together
with ``allow_unsafe=True``, and logs a warning every time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from palaestra.sandbox._bwrap import BubblewrapSandbox, bwrap_problem
from palaestra.sandbox._core import NoSandboxBackend, Sandbox, SandboxLimits
from palaestra.sandbox._local import UnsafeLocalSandbox
from palaestra.sandbox._process import ProcessSandbox, python_executable
from palaestra.sandbox._unshare import UnshareSandbox, unshare_problem

log = logging.getLogger("palaestra.sandbox")

ISOLATING: tuple[str, ...] = ("bubblewrap", "unshare")
"""Isolating backends, in the order ``"auto"`` tries them."""
_CLASSES: dict[str, type[ProcessSandbox]] = {
    "bubblewrap": BubblewrapSandbox,
    "unshare": UnshareSandbox,
    "unsafe-local": UnsafeLocalSandbox,
}


def _local_problem() -> str | None:
    return None if python_executable() else "no python3 on this machine"


_PROBLEMS: dict[str, Callable[[], str | None]] = {
    "bubblewrap": bwrap_problem,
    "unshare": unshare_problem,
    "unsafe-local": _local_problem,
}


def available_backends() -> dict[str, str | None]:
    """Backend name -> None if usable here, else why not (with the fix)."""
    return {name: problem() for name, problem in _PROBLEMS.items()}


def open_sandbox(
    backend: str = "auto", *, limits: SandboxLimits | None = None, allow_unsafe: bool = False
) -> Sandbox:
    """A new, not yet started sandbox (``with open_sandbox() as sb: ...`` starts and closes it)."""
    if backend == "auto":
        problems = {name: _PROBLEMS[name]() for name in ISOLATING}
        for name, problem in problems.items():
            if problem is None:
                return _CLASSES[name](limits)
        why = "; ".join(f"{name}: {p}" for name, p in problems.items())
        raise NoSandboxBackend(
            f"no isolating sandbox backend works on this machine ({why}). Install bubblewrap "
            "(apt-get install bubblewrap) or enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1). To run code without isolation "
            "anyway, use open_sandbox('unsafe-local', allow_unsafe=True)."
        )
    if backend not in _CLASSES:
        raise ValueError(
            f"unknown sandbox backend {backend!r}; choose one of auto, {', '.join(_CLASSES)}"
        )
    if backend == "unsafe-local":
        if not allow_unsafe:
            raise NoSandboxBackend(
                "the unsafe-local backend runs model-written code WITHOUT isolation; pass "
                "allow_unsafe=True if you accept that"
            )
        log.warning(
            "UNSAFE SANDBOX: code runs unisolated on this machine, with the permissions of "
            "this user, its files and its network (backend unsafe-local)"
        )
    else:
        problem = _PROBLEMS[backend]()
        if problem is not None:
            raise NoSandboxBackend(f"sandbox backend {backend!r} does not work here: {problem}")
    return _CLASSES[backend](limits)

"""Per-sandbox process-count limits with a cgroup ``pids.max`` (cgroup v1 or v2).

Why a cgroup: as root (how CI runs) the kernel ignores RLIMIT_NPROC, so a fork
bomb is only held by a ``pids`` cgroup (measured: a shell fork bomb reached
400/400 under NPROC=64 as root and stayed at 64 under ``pids.max``). The cgroup
is also how ``close`` finds and kills every process the sandbox started, even
ones that left its process group.

Layouts handled: cgroup v1 (the ``pids`` hierarchy at ``/sys/fs/cgroup/pids``,
also the hybrid layout) and v2 (a unified hierarchy at ``/sys/fs/cgroup`` or
``/sys/fs/cgroup/unified`` whose root offers the ``pids`` controller). Groups
live under ``<root>/palaestra/<sandbox id>`` and are removed on close.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/pids")
_V2 = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
_PARENT = "palaestra"


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _parent() -> tuple[Path, int] | str:
    """The ``palaestra`` parent group and the cgroup version, or why there is none."""
    if (_V1 / "pids.max").exists() or (_V1 / "cgroup.procs").exists():
        parent = _V1 / _PARENT
        try:
            parent.mkdir(exist_ok=True)
            return parent, 1
        except OSError as e:
            return f"cannot create {parent}: {e.strerror}"
    for root in _V2:
        controllers = root / "cgroup.controllers"
        if not controllers.exists() or "pids" not in controllers.read_text().split():
            continue
        parent = root / _PARENT
        try:
            if "pids" not in (root / "cgroup.subtree_control").read_text().split():
                _write(root / "cgroup.subtree_control", "+pids")
            parent.mkdir(exist_ok=True)
            if "pids" not in (parent / "cgroup.subtree_control").read_text().split():
                _write(parent / "cgroup.subtree_control", "+pids")
            return parent, 2
        except OSError as e:
            return f"cannot set up {parent} with the pids controller: {e.strerror}"
    return "no cgroup pids controller found (looked at /sys/fs/cgroup/pids and cgroup v2 roots)"


_cached: tuple[Path, int] | str | None = None
_STALE_S = 120.0


def _sweep(parent: Path) -> None:
    """Remove groups left by hosts that died without ``close`` (empty and old; live ones hold processes)."""
    now = time.time()
    for group in parent.glob("sbx-*"):
        with contextlib.suppress(OSError):
            if (
                not (group / "cgroup.procs").read_text().split()
                and now - group.stat().st_mtime > _STALE_S
            ):
                group.rmdir()


def cgroup_problem() -> str | None:
    """None if per-sandbox pids cgroups can be created here, else why not."""
    global _cached
    if _cached is None:
        _cached = _parent()
        if not isinstance(_cached, str):
            _sweep(_cached[0])
    return _cached if isinstance(_cached, str) else None


class PidsCgroup:
    """One sandbox's cgroup: create, join (from a preexec hook), kill all, remove."""

    def __init__(self, name: str, max_pids: int) -> None:
        problem = cgroup_problem()
        if problem is not None:
            raise OSError(problem)
        assert not isinstance(_cached, str) and _cached is not None
        parent, self.version = _cached
        self.path = parent / name
        self.path.mkdir()
        _write(self.path / "pids.max", str(max_pids))
        self.procs_file = str(self.path / "cgroup.procs")

    def join_self(self) -> None:
        """Move the calling process into the group (run in the child before exec)."""
        fd = os.open(self.procs_file, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group until it is empty; False if some survived."""
        kill_file = self.path / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            if self.version == 2 and kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and delete the group (best effort: logs nothing, raises nothing)."""
        self.kill_all()
        for _ in range(200):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)  # zombies not yet reaped keep the group busy for a moment

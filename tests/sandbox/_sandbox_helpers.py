"""Helpers shared by the sandbox tests (imported as a top-level module, like tests/model's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from palaestra.sandbox import Sandbox, SandboxLimits, available_backends, open_sandbox

AVAILABLE = available_backends()
ISOLATING = ("bubblewrap", "unshare")


def backend_params(names: tuple[str, ...]) -> list[object]:
    """One pytest param per backend; the ones that do not work here are skipped with the reason."""
    params: list[object] = []
    for name in names:
        why = AVAILABLE.get(name)
        marks = [pytest.mark.skip(reason=f"{name}: {why}")] if why else []
        params.append(pytest.param(name, id=name, marks=marks))
    return params


# Small limits keep the fork-bomb and memory probes fast.
LIMITS = SandboxLimits(cpu_seconds=5, memory_mb=512, max_processes=32, output_bytes=4000)


def open_started(backend: str, limits: SandboxLimits = LIMITS) -> Sandbox:
    sb = open_sandbox(backend, limits=limits, allow_unsafe=backend == "unsafe-local")
    sb.start()
    return sb


def marked_processes(marker: str) -> list[int]:
    """Host pids whose environment or command line carries ``marker``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for name in ("environ", "cmdline"):
            try:
                if marker.encode() in (entry / name).read_bytes():
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return found

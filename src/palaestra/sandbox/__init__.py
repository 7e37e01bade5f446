"""Isolation for agent-executed code: one sandbox per episode, a persistent interpreter inside.

See ``palaestra/sandbox/_core.py`` for the contract and ``docs/sandbox.md`` for
what each backend isolates.
"""

from palaestra.sandbox._core import (
    ExecResult,
    NoSandboxBackend,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)
from palaestra.sandbox._open import available_backends, open_sandbox

__all__ = [
    "ExecResult",
    "NoSandboxBackend",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "available_backends",
    "open_sandbox",
]

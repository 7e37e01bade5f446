"""Every exception Palaestra raises on purpose, in one place (as Gymnasium's ``error.py``).

This module imports nothing from Palaestra, so any layer can raise and catch
these without importing another layer (the sandbox raises an environment
error without importing ``palaestra.env``). The packages that raise them
re-export them too (``palaestra.env.EnvError`` is ``palaestra.errors.EnvError``).

Two kinds, and callers treat them differently:

- **Infrastructure failures** (:class:`EnvError`, :class:`SandboxUnavailable`,
  :class:`ModelError`): a server died, a simulator crashed, a connection was
  lost. The rollout engine records them as an ``error`` outcome, never as a
  reward of 0, and retries where it may.
- **Misuse** (:class:`ResetNeeded`, :class:`SandboxError`, :class:`StoreError`,
  :class:`NoSandboxBackend`, :class:`EnvCheckError`): a caller bug, a broken
  run folder, a machine that cannot do what was asked. They propagate with a
  message that says what to change.
"""

from __future__ import annotations


class EnvError(RuntimeError):
    """An infrastructure failure (server down, simulator crash): an error outcome, not a reward of 0."""


class ResetNeeded(RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended: a caller bug."""


class EnvCheckError(AssertionError):
    """``check_env`` found contract violations; ``problems`` lists them all."""

    def __init__(self, env_id: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{env_id} failed {len(problems)} conformance check(s):\n{lines}")


class SandboxError(RuntimeError):
    """The sandbox was misused (e.g. ``exec`` before ``start``)."""


class SandboxUnavailable(SandboxError, EnvError):
    """The sandbox died or broke: callers record the error outcome ``sandbox_unavailable``."""


class NoSandboxBackend(SandboxError):
    """No isolating backend works on this machine; the message says what to install."""


class ModelError(RuntimeError):
    """An infrastructure failure of a model backend (not a bad output)."""


class StoreError(RuntimeError):
    """The run directory is not a readable run (wrong schema version, corrupt file)."""


__all__ = [
    "EnvCheckError",
    "EnvError",
    "ModelError",
    "NoSandboxBackend",
    "ResetNeeded",
    "SandboxError",
    "SandboxUnavailable",
    "StoreError",
]

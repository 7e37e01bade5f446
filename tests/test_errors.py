"""palaestra.errors: one home for the exceptions, the same classes under their old names."""

from __future__ import annotations

import subprocess
import sys

import pytest

import palaestra.env
import palaestra.env._core
import palaestra.model
import palaestra.sandbox
import palaestra.trajectory
from palaestra import errors


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (palaestra.env, "EnvError"),
        (palaestra.env, "ResetNeeded"),
        (palaestra.env, "EnvCheckError"),
        (palaestra.env._core, "EnvError"),
        (palaestra.sandbox, "SandboxError"),
        (palaestra.sandbox, "SandboxUnavailable"),
        (palaestra.sandbox, "NoSandboxBackend"),
        (palaestra.model, "ModelError"),
        (palaestra.trajectory, "StoreError"),
    ],
)
def test_old_names_are_the_same_classes(module: object, name: str) -> None:
    assert getattr(module, name) is getattr(errors, name)
    assert name in errors.__all__


def test_a_dead_sandbox_is_an_infrastructure_failure() -> None:
    # The rollout engine records EnvError as an error outcome; the sandbox raises it
    # without importing the env layer.
    assert issubclass(errors.SandboxUnavailable, errors.EnvError)
    assert issubclass(errors.SandboxUnavailable, errors.SandboxError)
    assert not issubclass(errors.NoSandboxBackend, errors.EnvError)


def test_check_errors_list_every_problem() -> None:
    e = errors.EnvCheckError("x-v1", ["a", "b"])
    assert e.problems == ["a", "b"] and "x-v1 failed 2 conformance check(s)" in str(e)


def test_python_dash_m_palaestra_is_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "palaestra", "--help"], capture_output=True, text=True, check=True
    )
    assert "serve-env" in out.stdout and "train" in out.stdout

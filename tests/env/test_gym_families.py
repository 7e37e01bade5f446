"""Gymnasium's own checker, warnings as errors, over every built-in family (issue 14, item 17).

``docs/environments.md`` says the adapter passes gymnasium's ``check_env``: here it does
so with nothing tolerated, in both render modes, on every family Palaestra ships.
"""

from __future__ import annotations

import warnings

import pytest

from palaestra.env import registry

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env as gym_check_env  # noqa: E402

from palaestra.env.adapters import to_gymnasium  # noqa: E402

FAMILIES = sorted(i for i, s in registry().items() if s.source == "palaestra" and "/" not in i)


def test_every_builtin_family_is_covered() -> None:
    assert {"shop-v1", "house-v1", "toolqa-v1", "maze-v1", "code-v1"} <= set(FAMILIES)


@pytest.mark.parametrize("render_mode", [None, "ansi"])
@pytest.mark.parametrize("env_id", FAMILIES)
def test_gymnasium_check_env_passes_with_warnings_as_errors(
    env_id: str, render_mode: str | None
) -> None:
    adapter = to_gymnasium(env_id, render_mode=render_mode)  # type: ignore[arg-type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gym_check_env(adapter)
    finally:
        adapter.close()

"""Fixtures for the sandbox tests: one started sandbox per test (parametrize indirectly by backend)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _sandbox_helpers import open_started

from palaestra.sandbox import Sandbox


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    sb = open_started(request.param)
    try:
        yield sb
    finally:
        sb.close()

"""check_env catches each kind of contract violation (a checker that cannot fail is useless)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from palaestra.env import EnvCheckError, Observation, ToyEnv, check_env

_counter = itertools.count()


class Nondeterministic(ToyEnv):
    def _reset(self, task: Any) -> str:
        return super()._reset(task) + f" (visit {next(_counter)})"


class RaisesOnBadAction(ToyEnv):
    def _step(self, action: str) -> Observation:
        if action not in ("inc", "dec", "stop"):
            raise KeyError(action)
        return super()._step(action)


class WrongExpert(ToyEnv):
    def expert(self) -> str:
        return "stop"


class ListsBadAction(ToyEnv):
    def available_actions(self) -> list[str]:
        return [*super().available_actions(), "fly"]


class BrokenRestore(ToyEnv):
    def restore(self, snapshot: object) -> None:
        return None


class ProgressOutOfRange(ToyEnv):
    def progress(self) -> float:
        return 1.5


class NoInstruction(ToyEnv):
    def _reset(self, task: Any) -> str:
        super()._reset(task)
        return "You are at 0."


@pytest.mark.parametrize(
    ("cls", "needle"),
    [
        (Nondeterministic, "reset is not deterministic"),
        (RaisesOnBadAction, "raised KeyError"),
        (WrongExpert, "expert did not solve"),
        (ListsBadAction, "listed action 'fly' was rejected"),
        (BrokenRestore, "restore() did not return"),
        (ProgressOutOfRange, "progress 1.5 is not in [0, 1]"),
        (NoInstruction, "does not contain the instruction"),
    ],
)
def test_checker_catches(cls: type[ToyEnv], needle: str) -> None:
    with pytest.raises(EnvCheckError) as e:
        check_env(cls, seeds=(0, 1))
    assert any(needle in p for p in e.value.problems), e.value.problems


def test_checker_passes_a_good_env_and_reports() -> None:
    report = check_env(ToyEnv, seeds=(0, 1))
    assert report.ok and report.tasks_checked == 6 and report.expert_episodes == 12


def test_checker_can_return_problems_instead_of_raising() -> None:
    report = check_env(WrongExpert, seeds=(0,), raise_on_error=False)
    assert not report.ok and report.problems

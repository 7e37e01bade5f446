"""The curriculum: shares by success rate, harder cells unlocked, fresh seeds, no held-out leak."""

from __future__ import annotations

import pytest

from palaestra.env import Task, tasks
from palaestra.eval import get_suite, suite_tasks
from palaestra.evolve import CurriculumConfig, check_no_leak, next_cells, propose
from palaestra.evolve._curriculum import Cell, assess
from palaestra.trajectory import Episode, Outcome


def _episode(task: Task, outcome: Outcome) -> Episode:
    return Episode(
        run_id="r",
        task=task,
        agent="react",
        model_id="m",
        outcome=outcome,
        score=1.0 if outcome == "success" else 0.0,
    )


def test_mastered_cells_unlock_harder_ones_and_learning_zone_gets_most() -> None:
    cells = [
        Cell(env="house-v1", difficulty="easy", episodes=10, successes=9),  # mastered
        Cell(env="toolqa-v1", difficulty="easy", episodes=10, successes=5),  # learning
        Cell(env="maze-v1", difficulty="easy", episodes=10, successes=0),  # too hard
    ]
    out, notes = next_cells(cells, CurriculumConfig())
    by = {(c.env, c.difficulty): c for c in out}
    assert ("house-v1", "medium") in by and by[("house-v1", "medium")].zone == "new"
    assert any("unlocking medium" in n for n in notes)
    assert by[("house-v1", "easy")].zone == "mastered"
    assert by[("toolqa-v1", "easy")].share > by[("maze-v1", "easy")].share
    assert by[("maze-v1", "easy")].share > by[("house-v1", "easy")].share  # mastered: the floor
    assert by[("house-v1", "easy")].share > 0  # never forgotten entirely
    assert sum(c.share for c in out) == pytest.approx(1.0)


def test_assess_counts_outcomes_and_ignores_errors() -> None:
    ts = tasks("house-v1", "train", n=4, difficulty="easy", start=500)
    eps = [_episode(ts[0], "success"), _episode(ts[1], "failure"), _episode(ts[2], "error")]
    [cell] = assess([Cell(env="house-v1", difficulty="easy")], eps)
    assert (cell.episodes, cell.successes) == (2, 1)


def test_propose_gives_fresh_train_tasks_per_env_by_share() -> None:
    cells = [
        Cell(env="house-v1", difficulty="easy", share=0.75),
        Cell(env="house-v1", difficulty="medium", share=0.25),
    ]
    one, plan = propose(1, cells, 8)
    two, _ = propose(2, cells, 8)
    assert plan.tasks == {"house-v1/easy": 6, "house-v1/medium": 2}
    assert {t.split for t in one} == {"train"}
    assert not {t.task_id for t in one} & {t.task_id for t in two}  # new seeds every iteration
    demos = {t.task_id for t in tasks("house-v1", "train", n=500, difficulty="easy")}
    assert not {t.task_id for t in one} & demos  # and never the base demonstrations


def test_no_heldout_or_eval_task_is_ever_trained_on() -> None:
    heldout = tasks("house-v1", "heldout", n=2)
    with pytest.raises(ValueError, match="heldout split"):
        check_no_leak(heldout, [])
    evaluated = [st.task for st in suite_tasks(get_suite("recovery-v1"))]  # perturbed tasks
    plain_eval_task = tasks("house-v1", "test", n=1)[0]  # the plain task of a recovery entry
    with pytest.raises(ValueError, match="are evaluation tasks"):
        check_no_leak([plain_eval_task], evaluated)
    check_no_leak(tasks("house-v1", "train", n=3), evaluated)

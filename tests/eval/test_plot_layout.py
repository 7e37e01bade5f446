"""The report's figures stay legible: no wider than the report's column, legends off the data."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from palaestra.env import Task
from palaestra.eval import _plots
from palaestra.eval._metrics import RunMetrics, compute_metrics
from palaestra.trajectory import OUTCOMES, Episode, Step

pytest.importorskip("matplotlib")

ENVS = ["house-v1", "shop-v1", "toolqa-v1", "maze-v1", "code-v1", "acme/kitchen-v1"]
#: The report's content column (``main``: 1180 px less 2 x 28 px padding, less the border).
COLUMN_PX = 1120


def _episodes(run: int) -> list[Episode]:
    eps: list[Episode] = []
    for e, env in enumerate(ENVS):
        for seed in range(8):
            outcome = OUTCOMES[(seed + e + run) % 3]
            eps.append(
                Episode(
                    run_id=f"r{run}",
                    task=Task(
                        env_id=env, split="test", seed=seed, difficulty="easy", instruction="x"
                    ),
                    agent="react",
                    model_id="m",
                    outcome=outcome,
                    score=1.0 if outcome == "success" else 0.0,
                    steps=[Step(index=i) for i in range(1 + (seed * 3 + e) % 12)],
                    prompt_tokens=900 + 40 * seed,
                    completion_tokens=60 + seed,
                )
            )
    return eps


@pytest.fixture(scope="module")
def runs() -> tuple[list[RunMetrics], list[list[Episode]], list[str]]:
    episodes = [_episodes(r) for r in range(4)]
    metrics = [compute_metrics(eps, n_boot=50) for eps in episodes]
    return metrics, episodes, [f"run {r}" for r in range(4)]


def _width(png: bytes) -> int:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", png[16:20])[0]


def test_no_figure_is_wider_than_the_report(runs: Any) -> None:
    metrics, episodes, labels = runs
    pngs = {
        "tokens": _plots.tokens(metrics, labels),
        "steps": _plots.steps_histogram(episodes, labels),
        "success by env": _plots.success_progress(metrics, labels, "by_env", "environment"),
        "outcomes": _plots.outcomes(metrics, labels),
        "curve": _plots.curve(metrics, labels),
    }
    widths = {name: _width(png) for name, png in pngs.items() if png is not None}
    assert set(widths) == set(pngs)
    # A wider PNG is scaled down to the column, and its 8-10 pt text with it.
    assert all(w <= COLUMN_PX for w in widths.values()), widths


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    figs: list[Any] = []

    def keep(fig: Any) -> bytes:
        figs.append(fig)
        return b""

    monkeypatch.setattr(_plots, "_png", keep)
    yield figs


def _legends_clear_of_data(fig: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends, "the figure should have a legend"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (
                "a legend covers the data of a panel"
            )


def test_steps_histogram_legend_covers_no_bar(runs: Any, captured: list[Any]) -> None:
    _, episodes, labels = runs
    _plots.steps_histogram(episodes[:1], labels[:1])
    _plots.steps_histogram(episodes, labels)
    for fig in captured:
        _legends_clear_of_data(fig)


def test_tokens_legend_covers_no_bar(runs: Any, captured: list[Any]) -> None:
    metrics, _, labels = runs
    _plots.tokens(metrics[:2], labels[:2])
    _plots.tokens(metrics, labels)
    for fig in captured:
        _legends_clear_of_data(fig)

"""The viewer marks the step at which a safety environment judged a risk realised (Chromium)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip(
    "fastapi", reason='the viewer needs the [web] extra: pip install "palaestra[web]"'
)

from _browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, serving

from palaestra.eval import risk_realised_at
from palaestra.rollout import load_config, rollout
from palaestra.trajectory import Episode, RunStore
from palaestra.web import create_viewer_app


@pytest.fixture
def risky_run(tmp_path: Path) -> tuple[Path, Episode]:
    run = tmp_path / "random-safe"
    rollout(
        load_config(None, env="safe-v1", agent="random", n=30, split="test"), run, progress=False
    )
    with RunStore(run, readonly=True) as store:
        episodes = list(store.episodes())
    # a risk realised after the first step, so the mark is not just "the first step"
    hit = next(ep for ep in episodes if (at := risk_realised_at(ep)) is not None and at > 0)
    return run, hit


@pytest.fixture
def server(risky_run: tuple[Path, Episode]) -> Iterator[str]:
    with serving(create_viewer_app([risky_run[0]], allowed_hosts=["127.0.0.1"])) as url:
        yield url


def test_the_risk_step_is_marked_in_the_timeline_and_the_step(
    server: str, risky_run: tuple[Path, Episode]
) -> None:
    sync_playwright, _ = browser_or_skip()
    ep = risky_run[1]
    at = risk_realised_at(ep)
    assert at is not None
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = ctx.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"{server}#/episode/{risky_run[0].name}?id={quote(ep.episode_id, safe='')}")
            page.locator("#step-label").wait_for()
            marked = page.locator(".timeline li.risk")
            assert marked.count() == 1
            assert marked.get_attribute("data-step") == str(at)
            assert page.locator("#risk-flag").count() == 0  # step 0 is not the risky one
            marked.click()
            flag = page.locator("#risk-flag")
            flag.wait_for()
            assert flag.inner_text().startswith("risk realised")
            harm = ep.steps[at].info["safety"]["harm"]
            assert harm and harm[:20] in flag.inner_text()
        finally:
            ctx.close()

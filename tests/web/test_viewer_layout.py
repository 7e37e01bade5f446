"""The viewer's layout at a desktop (1280 px) and a phone (420 px) width, in headless Chromium.

Episode ids stay one line in the episode table (a wide table scrolls inside its box), the
episode heading wraps only at an id's "/", the player's buttons (First ... Last) stay
inside the page, and no page is wider than the window. Needs Debian's ``chromium`` and
the ``playwright`` package (never its own browser download); skipped without them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "fastapi", reason='the viewer needs the [web] extra: pip install "palaestra[web]"'
)

from _browser import CHROMIUM, serving

from palaestra.rollout import load_config, rollout
from palaestra.trajectory import RunStore
from palaestra.web import create_viewer_app

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    pytest.importorskip("playwright", reason="pip install playwright (never `playwright install`)")
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for agent in ("expert", "random"):
        rollout(
            load_config(None, env="shop-v1", agent=agent, n=2, difficulty="hard"),
            root / agent,
            progress=False,
        )
        runs.append(root / agent)
    with RunStore(runs[0], readonly=True) as store:
        episode_id = next(iter(store.episodes())).episode_id
    with serving(create_viewer_app(runs, allowed_hosts=["127.0.0.1"])) as url:
        yield url, episode_id


def _lines(page: Any, selector: str) -> float:
    """How many text lines the first element matching ``selector`` takes."""
    return page.eval_on_selector(
        selector,
        "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)",
    )


def _page(pw: Any, profile: str, width: int) -> Any:
    ctx = pw.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        args=ARGS,
        headless=True,
        viewport={"width": width, "height": 860},
    )
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    return ctx, page


@pytest.mark.parametrize("width", [1280, 420])
def test_episode_ids_stay_on_one_line_in_the_table(
    viewer: tuple[str, str], width: int, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = viewer
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx, page = _page(pw, profile, width)
        try:
            page.goto(url + "#/run/expert")
            page.locator("tr.episode-row").first.wait_for()
            page.screenshot(path=str(tmp_path / f"run-{width}.png"))
            assert _lines(page, "a.episode-link") < 1.5, "an episode id wraps in the table"
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            ctx.close()


@pytest.mark.parametrize("width", [1280, 420])
def test_player_and_heading_fit_the_window(
    viewer: tuple[str, str], width: int, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, episode_id = viewer
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx, page = _page(pw, profile, width)
        try:
            page.goto(url + "#/episode/expert?id=" + episode_id.replace("#", "%23"))
            page.locator("#step-label").wait_for()
            page.screenshot(path=str(tmp_path / f"episode-{width}.png"))
            player = page.locator(".player").bounding_box()
            assert player is not None
            for name in ("« First", "◀ Prev", "Next ▶", "Last »"):
                box = page.get_by_role("button", name=name).bounding_box()
                assert box is not None
                right = min(width, player["x"] + player["width"])
                assert player["x"] <= box["x"] and box["x"] + box["width"] <= right, (
                    f"{name!r} is cut off at {width} px"
                )
                # Each label on one line (it used to fold into "«" over "First").
                assert box["height"] < 40, f"{name!r} wraps at {width} px"
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            # The id wraps at its "/" (two lines at most on a phone), never mid-part.
            assert _lines(page, "h1 .id") < (1.5 if width >= 1000 else 2.5)
            page.get_by_role("button", name="Last »").click()
            assert page.locator("#step-label").inner_text().startswith("Step ")
        finally:
            ctx.close()

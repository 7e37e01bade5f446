"""The trajectory viewer: its JSON API (TestClient), ``palaestra view``, and an end-to-end
click-through in headless Chromium driven by Playwright against a real uvicorn server.

The browser test needs Debian's ``chromium`` (``apt-get install -y chromium``) and the
``playwright`` Python package (never its own browser download); it is skipped without them.
Set ``PALAESTRA_WRITE_DOCS_IMAGES=1`` to also write ``docs/images/viewer.png``.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip(
    "fastapi", reason='the viewer needs the [web] extra: pip install "palaestra[web]"'
)

from _browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, serving
from fastapi.testclient import TestClient

from palaestra.cli.view import view_cmd
from palaestra.rollout import load_config, rollout
from palaestra.trajectory import Episode, ErrorInfo, RunStore, Step, StoreError
from palaestra.web import create_viewer_app
from palaestra.web._index import diff_rows, same_action
from palaestra.web._serve import bind, url_of

REPO = Path(__file__).resolve().parents[2]
HOSTILE = '<img src=x onerror="window.__pwned=1"><b id="pwned">bold?</b> & </pre>'


def _make_runs(root: Path) -> tuple[Path, Path]:
    dirs = root / "expert", root / "random"
    for d in dirs:
        rollout(load_config(None, env="house-v1", agent=d.name, n=3), d, progress=False)
    return dirs


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return _make_runs(tmp_path)


@pytest.fixture
def client(runs: tuple[Path, Path]) -> Iterator[TestClient]:
    with TestClient(create_viewer_app(list(runs))) as c:
        yield c


def _stored(run_dir: Path) -> list[Episode]:
    with RunStore(run_dir, readonly=True) as s:
        return list(s.episodes())


def _variant(ep: Episode, attempt: int, **changes: Any) -> Episode:
    """A copy of ``ep`` as another attempt of the same task (what an epoch or retry writes)."""
    return ep.model_copy(update={"attempt": attempt, **changes})


# ---- API ---------------------------------------------------------------------------


def test_runs_report_header_and_counts_from_the_store(
    client: TestClient, runs: tuple[Path, Path]
) -> None:
    body = client.get("/api/runs").json()
    assert [r["id"] for r in body] == ["expert", "random"]
    for info, d in zip(body, runs, strict=True):
        with RunStore(d, readonly=True) as s:
            summary, header = s.summary(), s.run()
        assert header is not None
        assert info["episodes"] == summary["episodes"] == 3
        assert info["outcomes"] == summary["outcomes"]
        assert (info["kind"], info["agent"], info["path"]) == ("rollout", d.name, str(d))
    expert, random_ = body
    assert expert["success_rate"] == 1.0 and expert["outcomes"] == {"success": 3}
    assert random_["success_rate"] == random_["outcomes"].get("success", 0) / 3


def test_episode_list_filters_pages_and_keeps_store_order(
    client: TestClient, runs: tuple[Path, Path]
) -> None:
    order = [e.episode_id for e in _stored(runs[0])]
    page = client.get("/api/runs/expert/episodes").json()
    assert [e["episode_id"] for e in page["episodes"]] == order
    assert page["facets"]["outcome"] == {"success": 3}
    assert page["facets"]["env"] == {"house-v1": 3} and page["facets"]["suite"] == {}

    assert client.get("/api/runs/expert/episodes?outcome=success").json()["total"] == 3
    assert client.get("/api/runs/expert/episodes?outcome=failure").json()["total"] == 0
    assert client.get("/api/runs/expert/episodes?env=shop-v1").json()["total"] == 0
    assert client.get("/api/runs/expert/episodes?split=heldout").json()["total"] == 0
    hard = client.get("/api/runs/expert/episodes?q=HARD").json()
    assert [e["difficulty"] for e in hard["episodes"]] == ["hard"]

    second = client.get("/api/runs/expert/episodes?offset=2&limit=2").json()
    assert second["total"] == 3 and [e["episode_id"] for e in second["episodes"]] == order[2:]
    assert client.get("/api/runs/expert/episodes?limit=0").status_code == 422
    assert client.get("/api/runs/expert/episodes?limit=501").status_code == 422


def test_summary_counts_match_the_episode(client: TestClient, runs: tuple[Path, Path]) -> None:
    ep = _stored(runs[1])[0]
    row = client.get("/api/runs/random/episodes").json()["episodes"][0]
    assert row["episode_id"] == ep.episode_id and row["n_steps"] == ep.n_steps
    assert row["invalid_actions"] == sum(s.invalid_action for s in ep.steps)
    assert row["completion_tokens"] == ep.completion_tokens
    assert row["outcome"] == ep.outcome and row["instruction"] == ep.task.instruction


def test_suite_and_group_filters_read_episode_metadata(runs: tuple[Path, Path]) -> None:
    base = _stored(runs[0])[0]
    with RunStore(runs[0]) as w:
        for attempt, group in ((1, "heldin"), (2, "perturbed")):
            meta = {"suite": "heldin-v1", "suite_group": group, "perturbations": ["rename_verbs"]}
            w.add(_variant(base, attempt, metadata=meta))
    c = TestClient(create_viewer_app([runs[0]]))
    page = c.get("/api/runs/expert/episodes", params={"suite": "heldin-v1"}).json()
    assert page["total"] == 2
    assert page["facets"]["suite"] == {"heldin-v1": 2}
    assert page["facets"]["group"] == {"heldin": 1, "perturbed": 1}
    only = c.get("/api/runs/expert/episodes", params={"group": "perturbed"}).json()
    assert [e["attempt"] for e in only["episodes"]] == [2]
    assert only["episodes"][0]["perturbations"] == ["rename_verbs"]


def test_episode_is_served_exactly_as_stored(client: TestClient, runs: tuple[Path, Path]) -> None:
    for ep in _stored(runs[1]):
        r = client.get("/api/runs/random/episode", params={"id": ep.episode_id})
        assert r.status_code == 200
        assert Episode.model_validate_json(r.content) == ep


def test_errors_are_404_or_400_with_a_message(client: TestClient, runs: tuple[Path, Path]) -> None:
    r = client.get("/api/runs/nope/episodes")
    assert r.status_code == 404 and "expert, random" in r.json()["message"]
    r = client.get("/api/runs/expert/episode", params={"id": "house-v1/x#0"})
    assert r.status_code == 404 and "house-v1/x#0" in r.json()["message"]
    a, b = (e.episode_id for e in _stored(runs[0])[:2])
    r = client.get("/api/diff", params={"run_a": "expert", "episode_a": a, "run_b": "random",
                                        "episode_b": b})  # fmt: skip
    assert r.status_code == 400 and "same task" in r.json()["message"]


def test_task_lists_its_episodes_across_runs(client: TestClient, runs: tuple[Path, Path]) -> None:
    ep = _stored(runs[0])[1]
    found = client.get("/api/task", params={"id": ep.task.task_id}).json()
    assert [(f["run"], f["episode_id"]) for f in found] == [
        ("expert", ep.episode_id),
        ("random", ep.episode_id),
    ]


def test_diff_aligns_two_runs_step_by_step(client: TestClient, runs: tuple[Path, Path]) -> None:
    a = _stored(runs[0])[0]
    b = next(e for e in _stored(runs[1]) if e.task == a.task)
    d = client.get("/api/diff", params={"run_a": "expert", "episode_a": a.episode_id,
                                        "run_b": "random"}).json()  # fmt: skip
    assert Episode.model_validate(d["a"]) == a and Episode.model_validate(d["b"]) == b
    assert len(d["rows"]) == max(a.n_steps, b.n_steps)
    for i, row in enumerate(d["rows"]):
        act_a = a.steps[i].action if i < a.n_steps else None
        act_b = b.steps[i].action if i < b.n_steps else None
        assert (row["action_a"], row["action_b"]) == (act_a, act_b)
        assert row["same"] == (i < min(a.n_steps, b.n_steps) and act_a == act_b)
    diverging = [r["index"] for r in d["rows"] if not r["same"]]
    assert d["first_divergence"] == diverging[0]


def _ep_with_actions(template: Episode, actions: list[str | None]) -> Episode:
    steps = [
        Step(index=i, action=a, format_error=None if a else "no Action: line")
        for i, a in enumerate(actions)
    ]
    return template.model_copy(update={"steps": steps})


def test_diff_rows_hand_cases(runs: tuple[Path, Path]) -> None:
    t = _stored(runs[0])[0]
    rows, first = diff_rows(
        _ep_with_actions(t, ["go to desk 1", "open drawer 1", None, "look"]),
        _ep_with_actions(t, ["go to  desk 1", "open drawer 2", None]),
    )
    assert [r.same for r in rows] == [True, False, True, False]
    assert first == 1 and rows[3].action_b is None
    same, none = diff_rows(_ep_with_actions(t, ["a", "b"]), _ep_with_actions(t, ["a", "b"]))
    assert none is None and all(r.same for r in same)
    assert same_action(None, None) and not same_action("look", None)


def test_episodes_added_while_serving_appear_and_errors_get_replaced(
    client: TestClient, runs: tuple[Path, Path]
) -> None:
    assert client.get("/api/runs/random/episodes").json()["total"] == 3
    base = _stored(runs[1])[0]
    err = ErrorInfo(type="EnvError", message="server went away", source="env")
    with RunStore(runs[1]) as writer:  # a rollout still writing while the viewer reads
        writer.add(_variant(base, 1, outcome="error", error=err, steps=[]))
        page = client.get("/api/runs/random/episodes").json()
        assert page["total"] == 4
        new = page["episodes"][-1]
        assert new["attempt"] == 1 and new["outcome"] == "error"
        assert new["error"] == "EnvError: server went away"
        assert client.get("/api/runs").json()[1]["outcomes"].get("error") == 1
        # A retry that succeeds replaces the error episode under the same id.
        writer.add(_variant(base, 1, outcome="success", score=1.0))
        page = client.get("/api/runs/random/episodes?outcome=success").json()
        assert [e["attempt"] for e in page["episodes"]] == [1]
        assert client.get("/api/runs/random/episodes").json()["total"] == 4


def test_page_assets_headers_and_host_check(runs: tuple[Path, Path], client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.text) > 1000
        assert not re.search(r"https?://", r.text), f"{name} must not load external assets"
    js = client.get("/static/app.js").text
    # Trajectory text is untrusted: the page must never parse it as HTML.
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", js)
    assert client.get("/api/runs").headers["cache-control"] == "no-store"

    guarded = TestClient(create_viewer_app(list(runs), allowed_hosts=["127.0.0.1"]))
    assert guarded.get("/api/runs").status_code == 400  # Host: testserver
    assert guarded.get("/api/runs", headers={"host": "127.0.0.1:8080"}).status_code == 200


def test_duplicate_run_ids_get_distinct_keys(tmp_path: Path) -> None:
    a, _ = _make_runs(tmp_path / "one")
    b, _ = _make_runs(tmp_path / "two")
    c = TestClient(create_viewer_app([a, b]))
    assert [r["id"] for r in c.get("/api/runs").json()] == ["expert", "expert-2"]
    assert c.get("/api/runs/expert-2/episodes").json()["total"] == 3


# ---- palaestra view ------------------------------------------------------------------

_cli = typer.Typer()
_cli.command("view")(view_cmd)
runner = CliRunner()


def test_view_refuses_what_is_not_a_run(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    with pytest.raises(StoreError, match="not a run directory"):
        create_viewer_app([tmp_path / "empty"])
    (tmp_path / "empty").mkdir()
    res = runner.invoke(_cli, [str(tmp_path / "empty")])
    assert res.exit_code == 2 and "is not a run directory (no run.sqlite)" in res.output
    res = runner.invoke(_cli, [str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(_cli, [str(tmp_path)])  # the parent of two runs: name them
    assert res.exit_code == 2 and str(runs[0]) in res.output and str(runs[1]) in res.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.sqlite").write_text("not a database")
    res = runner.invoke(_cli, [str(tmp_path / "bad")])
    assert res.exit_code == 2 and "not a readable run store" in res.output


def test_view_reports_a_port_in_use(runs: tuple[Path, Path]) -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        res = runner.invoke(_cli, [str(runs[0]), "--port", str(port)])
        assert res.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in res.output
    finally:
        taken.close()


# ---- end to end in headless Chromium -------------------------------------------------


@pytest.fixture
def server(runs: tuple[Path, Path]) -> Iterator[str]:
    with serving(create_viewer_app(list(runs), allowed_hosts=["127.0.0.1"])) as url:
        yield url


def test_click_through_in_headless_chromium(
    server: str, runs: tuple[Path, Path], tmp_path: Path
) -> None:
    sync_playwright, expect = browser_or_skip()
    expert_eps, random_eps = _stored(runs[0]), _stored(runs[1])
    ep = expert_eps[0]
    other = next(e for e in random_eps if e.task == ep.task)
    shots: list[Path] = []
    problems: list[str] = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile,  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
        )
        try:
            page = ctx.new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )

            # Runs -> the expert run -> its episodes filtered by outcome.
            page.goto(server)
            page.get_by_role("link", name="random", exact=True).wait_for()
            page.get_by_role("link", name="expert", exact=True).click()
            page.locator("tr.episode-row").first.wait_for()
            page.select_option("select[data-filter=outcome]", "success")
            page.wait_for_url(re.compile(r"outcome=success"))
            expect(page.locator("tr.episode-row")).to_have_count(3)
            page.select_option("select[data-filter=outcome]", "failure")
            page.get_by_text("no episodes match").wait_for()
            page.select_option("select[data-filter=outcome]", "success")
            expect(page.locator("tr.episode-row")).to_have_count(3)

            # One episode, replayed: buttons, keyboard arrows and the slider.
            page.get_by_role("link", name=ep.episode_id).click()
            label = page.locator("#step-label")
            label.wait_for()
            n = ep.n_steps
            assert label.inner_text() == f"Step 1 / {n}"
            assert page.locator("pre.action").inner_text() == ep.steps[0].action
            page.click("#next")
            assert label.inner_text() == f"Step 2 / {n}"
            assert page.locator("pre.action").inner_text() == ep.steps[1].action
            assert page.locator("pre.observation").inner_text() == ep.steps[1].observation
            page.keyboard.press("ArrowRight")
            assert label.inner_text() == f"Step 3 / {n}"
            assert page.locator("pre.action").inner_text() == ep.steps[2].action
            page.keyboard.press("ArrowLeft")
            assert page.locator("pre.action").inner_text() == ep.steps[1].action
            assert "step=1" in page.url  # a reload comes back to this step
            shots.append(tmp_path / "episode.png")
            page.screenshot(path=str(shots[-1]))
            if os.environ.get("PALAESTRA_WRITE_DOCS_IMAGES") == "1":
                (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(REPO / "docs" / "images" / "viewer.png"))
            page.eval_on_selector(
                "#step-slider", "el => { el.value = el.max; el.dispatchEvent(new Event('input')); }"
            )
            assert label.inner_text() == f"Step {n} / {n}"
            assert page.locator(".timeline li.current").inner_text().endswith(ep.steps[-1].action)

            # The same task in the random run, side by side.
            page.locator("a.compare-link", has_text="random").click()
            page.locator("table.diff").wait_for()
            rows = page.locator("table.diff tbody tr")
            assert rows.count() == max(n, other.n_steps)
            _, first = diff_rows(ep, other)
            assert first is not None
            assert f"first differ at step {first}" in page.locator("#divergence").inner_text()
            assert "first" in (rows.nth(first).get_attribute("class") or "")
            assert "diverge" in (rows.nth(first).get_attribute("class") or "")
            row2 = rows.nth(2).locator("td")
            assert row2.nth(1).locator(".action").inner_text() == ep.steps[2].action
            assert row2.nth(2).locator(".action").inner_text() == other.steps[2].action
            shots.append(tmp_path / "diff.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            # A run still in progress: a new (hostile) episode shows up on Refresh, as text.
            page.goto(server + "#/run/random")
            expect(page.locator("tr.episode-row")).to_have_count(3)
            steps = list(random_eps[0].steps)
            steps[0] = steps[0].model_copy(update={"observation": HOSTILE})
            hostile = random_eps[0].model_copy(update={"attempt": 1, "steps": steps})
            with RunStore(runs[1]) as writer:
                writer.add(hostile)
            page.click("#refresh")
            expect(page.locator("tr.episode-row")).to_have_count(4)
            page.get_by_role("link", name=hostile.episode_id).click()
            page.locator("pre.observation").wait_for()
            assert page.locator("pre.observation").inner_text() == HOSTILE
            assert page.locator("#pwned").count() == 0
            assert page.evaluate("window.__pwned") is None
        finally:
            ctx.close()
    assert not problems, problems
    for shot in shots:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, shot


def test_bind_gives_a_free_loopback_port() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.family == socket.AF_INET
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url_of(sock))
    finally:
        sock.close()

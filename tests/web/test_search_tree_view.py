"""The viewer's search-tree view: the tree API and, in headless Chromium, the tree panel of a
search agent's episode (skipped without Debian's chromium and the playwright package)."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "fastapi", reason='the viewer needs the [web] extra: pip install "palaestra[web]"'
)

from _browser import CHROMIUM, serving
from fastapi.testclient import TestClient

from palaestra.agent import BestFirstSearchAgent, ReactAgent
from palaestra.env import ToyEnv
from palaestra.model import Completion, Conversation, GenerationConfig, Model
from palaestra.rollout import RolloutEngine
from palaestra.trajectory import RunStore
from palaestra.trajectory._schema import SearchTree
from palaestra.web import create_viewer_app


class CycleModel(Model):
    id = "cycle"

    def __init__(self) -> None:
        self.cycle = itertools.cycle(["dec", "inc", "stop"])

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        return [
            Completion(
                text=f"Action: {next(self.cycle)}",
                finish_reason="stop",
                prompt_tokens=1,
                completion_tokens=1,
            )
            for _ in prompts
        ]


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, agent in (("search", BestFirstSearchAgent()), ("react", ReactAgent(max_steps=3))):
        out[name] = tmp_path / name
        with RunStore(out[name]) as store:
            RolloutEngine(agent, ToyEnv, CycleModel(), store=store).run([ToyEnv().make_task(0)])
    return out


def _episode_id(run: Path) -> str:
    with RunStore(run, readonly=True) as s:
        return next(iter(s.done(include_errors=True)))


def test_tree_api_serves_the_stored_tree_and_404s_without_one(runs: dict[str, Path]) -> None:
    c = TestClient(create_viewer_app([runs["search"], runs["react"]]))
    ep_id = _episode_id(runs["search"])
    r = c.get("/api/runs/search/tree", params={"id": ep_id})
    assert r.status_code == 200
    with RunStore(runs["search"], readonly=True) as s:
        assert SearchTree.model_validate_json(r.content) == s.tree(ep_id)
    r = c.get("/api/runs/react/tree", params={"id": _episode_id(runs["react"])})
    assert r.status_code == 404 and "has no search tree" in r.json()["message"]
    r = c.get("/api/runs/search/tree", params={"id": "toy-v1/x#0"})
    assert r.status_code == 404 and "has no episode" in r.json()["message"]


@pytest.fixture
def server(runs: dict[str, Path]) -> Iterator[str]:
    with serving(create_viewer_app([runs["search"]], allowed_hosts=["127.0.0.1"])) as url:
        yield url


def test_tree_panel_in_headless_chromium(server: str, runs: dict[str, Path]) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    sync_api: Any = pytest.importorskip("playwright.sync_api")
    ep_id = _episode_id(runs["search"])
    with RunStore(runs["search"], readonly=True) as s:
        tree = s.tree(ep_id)
    assert tree is not None
    problems: list[str] = []
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )  # fmt: skip
        try:
            page = ctx.new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.goto(server + "#/run/search")
            page.get_by_role("link", name=ep_id).click()
            panel = page.locator("#search-tree")
            panel.locator("summary").click()
            assert f"{len(tree.nodes)} nodes" in panel.locator("summary").inner_text().lower()
            nodes = page.locator("li.tree-node")
            sync_api.expect(nodes).to_have_count(len(tree.nodes))
            best = page.locator("li.tree-node.best > .tree-line .tree-action")
            assert best.all_inner_texts() == [
                tree.nodes[i].action or "(start)" for i in tree.best_path
            ]
            assert page.locator("li.tree-node.success").count() == sum(
                n.success for n in tree.nodes
            )
        finally:
            ctx.close()
    assert not problems, problems

"""Data from search trees: Agent-R revision samples (masking, revision, good suffix, error-step
fallbacks), Agent Q tree pairs (higher Q preferred), and the CLI commands."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("datasets")

from palaestra.agent import BestFirstSearchAgent, MCTSAgent
from palaestra.cli import app
from palaestra.data import build_pairs, build_reflect, load_trees
from palaestra.data._reflect import contrast_paths, pick_error_step
from palaestra.env import ToyEnv
from palaestra.model import Completion, Conversation, GenerationConfig, Model, ScriptedModel
from palaestra.rollout import RolloutEngine
from palaestra.trajectory import RunStore

REVISION = "I realize my previous action was wrong"


class CycleModel(Model):
    """Samples cycle through dec, inc, stop, so every state gets all three actions."""

    id = "cycle"

    def __init__(self) -> None:
        self.cycle = itertools.cycle(["dec", "inc", "stop"])

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        return [
            Completion(
                text=f"Thought: try {a}\nAction: {a}",
                finish_reason="stop",
                prompt_tokens=1,
                completion_tokens=1,
            )
            for a in (next(self.cycle) for _ in prompts)
        ]


def _search_run(root: Path, agent: str = "best-first", n: int = 2) -> Path:
    run = root / agent
    store = RunStore(run)
    search = BestFirstSearchAgent(max_steps=8) if agent == "best-first" else MCTSAgent(max_steps=8)
    engine = RolloutEngine(search, ToyEnv, CycleModel(), concurrency=1, store=store)
    engine.run([ToyEnv().make_task(s) for s in range(n)])
    store.close()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search-runs")
    return {a: _search_run(root, a) for a in ("best-first", "mcts")}


def test_contrast_paths_pair_a_failed_and_a_successful_subtree(runs: dict[str, Path]) -> None:
    for _, tree in load_trees([runs["best-first"]])[0].trees:
        pairs = contrast_paths(tree, 10)
        assert pairs
        for bad, good in pairs:
            assert tree.nodes[good].success and not tree.nodes[bad].success
            bad_ids = [n.id for n in tree.path(bad)]
            good_ids = [n.id for n in tree.path(good)]
            shared = next(
                i for i, (a, b) in enumerate(zip(bad_ids, good_ids, strict=False)) if a != b
            )
            assert shared >= 1 and bad_ids[shared - 1] == good_ids[shared - 1]


def test_reflect_masks_the_bad_prefix_and_trains_revision_and_good_suffix(
    runs: dict[str, Path],
) -> None:
    actor = ScriptedModel(lambda conv: "The first wrong action was step 1.")
    ds, card = build_reflect([runs["best-first"]], model=actor, max_per_tree=2)
    assert card.builder == "reflect" and card.counts["rows"] == len(ds) > 0
    assert card.counts["error_step_model"] == len(ds)
    assert "Step 1:" in actor.calls[0][-1].content  # the actor saw the numbered bad path
    for row in ds:
        msgs = row["messages"]
        rev = next(i for i, m in enumerate(msgs) if REVISION in m["content"])
        assert msgs[rev]["role"] == "assistant" and msgs[rev]["train"] is True
        before, after = msgs[:rev], msgs[rev + 1 :]
        assert [m["role"] for m in msgs[:2]] == ["system", "user"]
        # the bad prefix: its assistant turns are context without loss
        bad_turns = [m for m in before if m["role"] == "assistant"]
        assert len(bad_turns) == row["error_step"] >= 1
        assert all(m["train"] is False for m in bad_turns)
        assert row["bad_action"] in bad_turns[-1]["content"]
        # the revision names the bad action and takes the good one
        assert f'"{row["bad_action"]}"' in msgs[rev]["content"]
        assert msgs[rev]["content"].endswith(f"Action: {row['good_action']}")
        # the good suffix: every assistant turn has loss, and it ends in success
        assert all(m["train"] is True for m in after if m["role"] == "assistant")
        assert msgs[-1]["role"] == "user" and msgs[-1]["content"].endswith("Correct!")
        roles = [m["role"] for m in msgs]
        assert all(a != b for a, b in itertools.pairwise(roles[1:]))  # turns alternate
    tokens = card.tokens
    assert tokens is not None and 0 < tokens.trained < tokens.total


def test_reflect_error_step_fallbacks_are_counted(runs: dict[str, Path]) -> None:
    _, card = build_reflect([runs["best-first"]])  # no actor: the divergence
    assert card.counts["error_step_divergence"] == card.counts["rows"] > 0
    _, card = build_reflect([runs["best-first"]], model=ScriptedModel(lambda c: "not sure"))
    assert card.counts["error_step_fallback"] == card.counts["rows"]
    assert pick_error_step("step 0", 2, 4) == (2, "fallback")
    assert pick_error_step("Step 9", 2, 4) == (2, "fallback")
    assert pick_error_step("1", 2, 4) == (2, "clamped")
    assert pick_error_step("3", 2, 4) == (3, "model")
    assert pick_error_step(None, 2, 4) == (2, "divergence")


def test_tree_pairs_prefer_the_higher_q_action(runs: dict[str, Path]) -> None:
    for agent in ("best-first", "mcts"):
        ds, card = build_pairs([runs[agent]], kinds=["tree"])
        assert card.counts["tree_pairs"] == len(ds) > 0
        assert card.counts["tree_branching_states"] >= len(ds)
        trees = [t for _, t in load_trees([runs[agent]])[0].trees]
        for row in ds:
            assert row["kind"] == "tree"
            assert row["chosen_value"] - row["rejected_value"] >= 0.1
            assert row["prompt"][-1]["role"] == "user"
            # find the node and check chosen is its highest-Q child, rejected its lowest
            (tree, parent) = next(
                (t, n) for t in trees for n in t.nodes
                if n.expanded and [{"role": m.role, "content": m.content}
                                   for m in t.messages(n.id)] == row["prompt"]
            )  # fmt: skip
            qs = {c.raw_output: (c.q if c.q is not None else c.value or 0.0)
                  for c in tree.children(parent.id)}  # fmt: skip
            assert qs[row["chosen"][0]["content"]] == max(qs.values())
            assert qs[row["rejected"][0]["content"]] == min(qs.values())
        # at the task's start, inc (toward the target) beats stop (a failed end)
        start = [r for r in ds if r["depth"] == 0]
        assert start and all(r["chosen"][0]["content"].endswith("Action: inc") for r in start)


def test_tree_kind_is_empty_on_runs_without_trees(tmp_path: Path) -> None:
    run = tmp_path / "react"
    with RunStore(run) as store:
        from palaestra.agent import ReactAgent

        RolloutEngine(ReactAgent(), ToyEnv, CycleModel(), store=store).run([ToyEnv().make_task(0)])
    ds, card = build_pairs([run], kinds=["tree"])
    assert len(ds) == 0 and card.counts["trees"] == 0
    with pytest.raises(ValueError, match="tree"):
        build_pairs([run], kinds=["forest"])


# ---- CLI -------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_reflect_and_tree_pairs(runs: dict[str, Path], tmp_path: Path) -> None:
    from datasets import load_from_disk

    res = runner.invoke(app, ["data", "reflect", str(runs["mcts"]), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "reflect" in res.output and (tmp_path / "r" / "card.json").exists()
    assert len(load_from_disk(str(tmp_path / "r"))) > 0
    res = runner.invoke(app, ["data", "pairs", str(runs["mcts"]), "--kind", "tree",
                              "--out", str(tmp_path / "p")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "tree_pairs" in res.output


def test_cli_reflect_without_trees_says_how_to_get_them(tmp_path: Path) -> None:
    run = tmp_path / "react"
    with RunStore(run) as store:
        from palaestra.agent import ReactAgent

        RolloutEngine(ReactAgent(), ToyEnv, CycleModel(), store=store).run([ToyEnv().make_task(0)])
    res = runner.invoke(app, ["data", "reflect", str(run), "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "search:mcts" in res.output

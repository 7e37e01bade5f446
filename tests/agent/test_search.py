"""Search agents (best-first, MCTS) with scripted models on ToyEnv: search beats greedy,
budgets hold, values parse, the tree is stored with the run, and the engine batches calls."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from palaestra.agent import (
    BestFirstSearchAgent,
    MCTSAgent,
    ReactAgent,
    SearchConfig,
    get_agent,
    run_episode,
)
from palaestra.agent.search import VALUE_PROMPT, parse_score
from palaestra.env import ToyEnv
from palaestra.model import Completion, Conversation, GenerationConfig, Model, ScriptedModel
from palaestra.rollout import RolloutEngine
from palaestra.trajectory import RunStore
from palaestra.trajectory._schema import TREE_METADATA_KEY, SearchTree


class ModeModel(Model):
    """Greedy decoding always says ``dec`` (wrong); samples cycle through every action."""

    id = "mode"

    def __init__(self, value_reply: str = "5") -> None:
        self.cycle = itertools.cycle(["dec", "inc", "stop"])
        self.value_reply = value_reply
        self.purposes: list[float] = []

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        config = config or GenerationConfig()
        out: list[Completion] = []
        for conv in prompts:
            self.purposes.append(config.temperature)
            if conv[-1].content.endswith(VALUE_PROMPT):
                text = self.value_reply
            elif config.temperature == 0:
                text = "Thought: down\nAction: dec"
            else:
                text = f"Thought: try\nAction: {next(self.cycle)}"
            out.append(Completion(text=text, finish_reason="stop", prompt_tokens=10,
                                  completion_tokens=5))  # fmt: skip
        return out


def _tree(end_meta: dict[str, object]) -> SearchTree:
    return SearchTree.model_validate(end_meta[TREE_METADATA_KEY])


def test_best_first_finds_the_solution_greedy_decoding_misses() -> None:
    env = ToyEnv()
    task = env.make_task(0)  # target 2
    _, greedy = run_episode(ReactAgent(max_steps=6), env, task, ModeModel())
    assert greedy.outcome == "limit"  # dec forever
    steps, end = run_episode(BestFirstSearchAgent(max_steps=6), env, task, ModeModel())
    assert end.outcome == "success"
    assert [s.action for s in steps] == ["inc", "inc", "stop"]
    assert [s.index for s in steps] == [0, 1, 2] and steps[-1].reward == 1.0
    tree = _tree(end.metadata)
    assert tree.algorithm == "best-first" and tree.used["stop_reason"] == "success"
    # the recorded episode is the tree's best path, replayed
    assert [tree.nodes[i].action for i in tree.best_path[1:]] == ["inc", "inc", "stop"]
    assert tree.nodes[tree.best_path[-1]].success
    # the root's children are the three distinct sampled actions; the failed stop is terminal
    root_kids = {n.action: n for n in tree.children(0)}
    assert set(root_kids) == {"dec", "inc", "stop"}
    assert root_kids["stop"].terminal and not root_kids["stop"].success
    assert root_kids["inc"].q == 1.0 and root_kids["stop"].q == 0.0  # best value below
    # the conversation alternates and ends with the success observation
    assert [m.role for m in end.messages] == ["system", "user"] + ["assistant", "user"] * 3
    assert end.messages[-1].content.endswith("Correct!")


def test_mcts_with_progress_value_solves_a_hard_task_within_budget() -> None:
    env = ToyEnv()
    task = next(t for s in range(20) if (t := env.make_task(s, difficulty="hard")).instruction
                .endswith(" 6."))  # fmt: skip
    rng = random.Random(0)
    # a weak policy: half of its samples are wrong (dec or stop)
    model = ScriptedModel(lambda conv: f"Action: {rng.choice(['inc', 'inc', 'dec', 'stop'])}")
    cfg = SearchConfig(max_nodes=40, branching=3, round_nodes=6)
    steps, end = run_episode(MCTSAgent(max_steps=20, search=cfg), env, task, model)
    tree = _tree(end.metadata)
    assert end.outcome == "success", tree.used
    assert steps[-1].action == "stop" and sum(s.action == "inc" for s in steps) >= 6
    assert tree.used["expansions"] <= 40
    visited = [n for n in tree.nodes if n.visits]
    assert visited and all(n.q is not None for n in visited)
    root = tree.nodes[0]
    assert root.visits == sum(c.visits for c in tree.children(0)) + 0  # every visit backs up


@pytest.mark.parametrize("agent", ["search:best-first", "search:mcts"])
def test_node_token_and_depth_budgets_are_respected(agent: str) -> None:
    env = ToyEnv()
    task = env.make_task(1, difficulty="hard")
    model = ScriptedModel(lambda conv: "Action: dec")  # never progresses
    _, end = run_episode(get_agent(agent, search={"max_nodes": 3}), env, task, model)
    tree = _tree(end.metadata)
    assert end.outcome == "limit" and end.limit_reason == "search_nodes"
    assert tree.used["expansions"] == 3 and sum(n.expanded for n in tree.nodes) == 3

    _, end = run_episode(get_agent(agent, search={"max_tokens": 60}), env, task, model)
    tree = _tree(end.metadata)
    assert end.limit_reason == "search_tokens" and tree.used["tokens"] >= 60
    assert tree.used["tokens"] < 60 + 40  # stops at the first call past the budget

    model = ScriptedModel(lambda conv: "Action: inc")
    steps, end = run_episode(get_agent(agent, max_steps=2), env, task, model)
    tree = _tree(end.metadata)
    assert end.limit_reason == "steps" and len(steps) == 2
    assert max(n.depth for n in tree.nodes) <= 2


def test_format_errors_make_no_nodes_and_a_dead_end_ends_the_episode() -> None:
    env = ToyEnv()
    model = ScriptedModel(lambda conv: "I am not sure")
    steps, end = run_episode(BestFirstSearchAgent(), env, env.make_task(0), model)
    tree = _tree(end.metadata)
    assert steps == [] and end.outcome == "limit" and end.limit_reason == "search_dead_end"
    assert len(tree.nodes) == 1 and tree.used["format_errors"] == 4


@pytest.mark.parametrize(
    ("text", "score"),
    [("7", 0.7), ("Rating: 8/10", 0.8), ("3 out of 10.", 0.3), ("10", 1.0), ("0", 0.0),
     ("I'd say 2.5", 0.25), ("eleven", None), ("42", None), ("-3", None), ("", None)],
)  # fmt: skip
def test_parse_score(text: str, score: float | None) -> None:
    assert parse_score(text) == score


def test_self_evaluation_and_rollout_values() -> None:
    env = ToyEnv()
    task = env.make_task(0)
    model = ModeModel(value_reply="Score: 9/10")
    _, end = run_episode(MCTSAgent(search={"value": "self"}), env, task, model)
    tree = _tree(end.metadata)
    assert end.outcome == "success" and tree.value == "self"
    valued = [n for n in tree.nodes if n.id and not n.terminal]
    assert valued and all(n.value == 0.9 for n in valued)
    assert 0.0 in model.purposes  # value calls are greedy

    bad = ModeModel(value_reply="no idea")
    _, end = run_episode(MCTSAgent(search={"value": "self"}), env, task, bad)
    assert _tree(end.metadata).used["value_parse_failures"] > 0

    _, end = run_episode(
        BestFirstSearchAgent(search={"value": "rollout", "rollout_depth": 3}), env, task,
        ModeModel(),
    )  # fmt: skip
    tree = _tree(end.metadata)
    assert end.outcome == "success" and tree.used["rollout_steps"] > 0
    assert all(0.0 <= (n.value or 0.0) <= 1.0 for n in tree.nodes)


def test_search_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="value"):
        MCTSAgent(search={"value": "oracle"})
    with pytest.raises(ValueError, match="branchin"):
        MCTSAgent(search={"branchin": 2})


def test_the_tree_is_stored_with_the_run_and_round_trips(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    agent = MCTSAgent(max_steps=8)
    engine = RolloutEngine(agent, ToyEnv, ModeModel(), concurrency=2, store=store)
    env = ToyEnv()
    tasks = [env.make_task(s) for s in range(3)]
    episodes = engine.run(tasks)
    store.close()
    assert {e.outcome for e in episodes} == {"success"}
    with RunStore(tmp_path / "run", readonly=True) as ro:
        stored = list(ro.episodes())
        trees = dict(ro.trees())
        assert len(trees) == 3
        for ep in stored:
            assert TREE_METADATA_KEY not in ep.metadata  # moved to the trees table
            assert ep.metadata["search"]["algorithm"] == "mcts"
            tree = ro.tree(ep.episode_id)
            assert tree is not None and tree == trees[ep.episode_id]
            assert SearchTree.model_validate_json(tree.model_dump_json()) == tree
            assert [tree.nodes[i].action for i in tree.best_path[1:]] == [
                s.action for s in ep.steps
            ]
            assert len(tree.nodes) == ep.metadata["search"]["nodes"]
            assert [n.id for n in tree.nodes] == list(range(len(tree.nodes)))
            assert all(n.parent is None or n.parent < n.id for n in tree.nodes)
        assert ro.tree("nope#0") is None


def test_a_store_from_before_trees_still_opens(tmp_path: Path) -> None:
    run = tmp_path / "old"
    store = RunStore(run)
    steps, end = run_episode(ReactAgent(), ToyEnv(), ToyEnv().make_task(0),
                             ScriptedModel(["Action: inc", "Action: inc", "Action: stop"]))  # fmt: skip
    from palaestra.trajectory import Episode

    ep = Episode(run_id="old", task=ToyEnv().make_task(0), agent="react", model_id="s",
                 outcome=end.outcome, steps=steps, messages=end.messages)  # fmt: skip
    store.add(ep)
    store.close()
    with sqlite3.connect(run / "run.sqlite") as conn:  # what a store written before trees holds
        conn.execute("DROP TABLE trees")
    with RunStore(run, readonly=True) as ro:
        assert ro.tree(ep.episode_id) is None and list(ro.trees()) == []
        assert len(list(ro.episodes())) == 1
    with RunStore(run) as rw:  # a writable open adds the table
        assert rw.tree(ep.episode_id) is None


@pytest.mark.slow  # building the tiny model and importing torch: ~1-2 min on 2 shared cores
def test_tiny_model_through_the_engine_batches_search_calls(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pytest.importorskip("transformers")
    from palaestra.model import get_model

    model = get_model("tiny", cache_dir=tmp_path_factory.mktemp("tiny-cache"))
    agent = MCTSAgent(
        max_steps=4,
        generation=GenerationConfig(max_new_tokens=12, temperature=1.0, seed=0,
                                    stop=["\nObservation"]),
        search={"max_nodes": 2, "branching": 2, "round_nodes": 2},
    )  # fmt: skip
    engine = RolloutEngine(agent, ToyEnv, model, concurrency=4)
    env = ToyEnv()
    episodes = engine.run([env.make_task(s) for s in range(4)])
    assert len(episodes) == 4 and all(e.outcome != "error" for e in episodes)
    assert all("search" in e.metadata for e in episodes)
    # every episode's i-th sample shares a seed, so their calls went out together
    assert engine.stats.model_calls >= 8 and engine.stats.mean_batch > 1.5

"""The learning test: SFT of the tiny model on expert trajectories of one family, then rollouts.

The default-tier test is the fast, smaller version: the ``tiny/micro`` model
learns the ReAct format and the family's tool syntax from ToolQA expert
episodes (well-formed actions rise from ~0 to a majority). The full version —
held-in task success rising from ~0 to a majority, on house-v1 easy with its
contents visible and the act prompt — is in the ``slow`` tier and is not met
yet (xfail with the measured numbers): on 2 CPU cores 300 steps take ~16
minutes, and the from-scratch model has not learnt to copy the target object.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl")

from palaestra.agent import ReactAgent
from palaestra.env import make, tasks
from palaestra.model import get_model
from palaestra.rollout import RolloutEngine, load_config, rollout
from palaestra.train import SFTRunConfig, resolve_model_path, train_sft
from palaestra.trajectory import Episode, RunStore, to_dataset

ENV = "toolqa-v1"
_WELL_FORMED = re.compile(r"^Thought: .+\nAction: (search|lookup|calculate|finish)\[[^\]]+\]$")


def _expert_data(out: Path, n: int) -> Any:
    rollout(
        load_config(None, env=ENV, agent="expert", n=n, split="train", difficulty="easy"),
        out,
        progress=False,
    )
    with RunStore(out, readonly=True) as store:
        return to_dataset(store.episodes(outcome="success"))


def _evaluate(model_id: str, n: int) -> list[Episode]:
    model = get_model(model_id)
    suite = tasks(ENV, split="train", n=n, difficulty="easy")  # held-in: the tasks trained on
    engine = RolloutEngine(ReactAgent(max_steps=5), lambda: make(ENV), model, concurrency=16)
    return engine.run(suite)


def _well_formed(episodes: list[Episode]) -> float:
    replies = [m.content for ep in episodes for m in ep.messages if m.role == "assistant"]
    return sum(bool(_WELL_FORMED.match(r.strip())) for r in replies) / max(len(replies), 1)


def _success(episodes: list[Episode]) -> float:
    return sum(ep.outcome == "success" for ep in episodes) / len(episodes)


@pytest.fixture
def one_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(
    tmp_path: Path, model: str, n_train: int, n_eval: int, config: SFTRunConfig
) -> tuple[list[Episode], list[Episode], Any, dict[str, torch.Tensor]]:
    data = _expert_data(tmp_path / "expert", n_train)
    assert len(data) == n_train
    base = resolve_model_path(model)
    before_model: Any = get_model(f"hf/{base}")
    before = {k: v.clone() for k, v in before_model.model.state_dict().items()}
    before_eps = _evaluate(f"hf/{base}", n_eval)
    meta = train_sft(model, data, config, tmp_path / "sft")
    after_eps = _evaluate(meta.load_id, n_eval)
    after_model: Any = get_model(meta.load_id)
    changed = {
        k: v for k, v in after_model.model.state_dict().items() if not torch.equal(v, before[k])
    }
    return before_eps, after_eps, meta, changed


def test_sft_learns_the_format_fast(tmp_path: Path, one_thread: None) -> None:
    cfg = SFTRunConfig(
        method="full",
        learning_rate=5e-3,
        max_steps=100,
        batch_size=8,
        max_length=640,
        progress=False,
        logging_steps=5,
    )
    before_eps, after_eps, meta, changed = _run(tmp_path, "tiny/micro", 48, 16, cfg)
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]
    assert changed
    assert _well_formed(before_eps) < 0.1
    replies = [m.content for ep in after_eps for m in ep.messages if m.role == "assistant"]
    assert _well_formed(after_eps) > 0.5, (losses, replies[:4])


HOUSE = "house-v1"
HOUSE_PARAMS = {"contents_visible": True}


def _house_episodes(agent: Any, model: Any, suite: list[Any]) -> list[Episode]:
    engine = RolloutEngine(agent, lambda: make(HOUSE), model, concurrency=32)
    return engine.run(suite)


@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured 2026-11-25 (2-core CPU, ~16 min): tiny, 1000 house-v1 easy demos with "
    "contents_visible and the act prompt, 300 steps (lr 1e-3, batch 16): loss 6.27 -> 0.23, "
    "held-in success 0% on fresh seeds. Teacher-forced on expert episodes the model gets "
    "every receptacle right and every object word wrong: it has not learnt to copy the "
    "target object (it writes frequent object words). See docs/evolve.md.",
    strict=False,
)
def test_sft_learns_the_family(tmp_path: Path, one_thread: None) -> None:
    from palaestra.agent import ExpertAgent

    n_train, n_eval = 1000, 40
    demos = _house_episodes(
        ExpertAgent(prompt="act", max_steps=20),
        None,
        tasks(HOUSE, "train", n=n_train, difficulty="easy", **HOUSE_PARAMS),
    )
    data = to_dataset([ep for ep in demos if ep.outcome == "success"])
    assert len(data) == n_train
    fresh = tasks(HOUSE, "train", n=n_train + n_eval, difficulty="easy", **HOUSE_PARAMS)[n_train:]
    cfg = SFTRunConfig(
        method="full",
        learning_rate=1e-3,
        max_steps=300,
        batch_size=16,
        max_length=1024,
        warmup_ratio=0.05,
        progress=False,
        logging_steps=10,
    )
    base = resolve_model_path("tiny")
    before = _house_episodes(ReactAgent(max_steps=10, prompt="act"), get_model(f"hf/{base}"), fresh)
    meta = train_sft("tiny", data, cfg, tmp_path / "sft")
    after = _house_episodes(ReactAgent(max_steps=10, prompt="act"), get_model(meta.load_id), fresh)
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]
    assert _success(before) < 0.1
    assert _success(after) > 0.5

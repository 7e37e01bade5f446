"""The learning test: SFT of the tiny model on expert trajectories of one family, then rollouts.

The default-tier test is the fast, smaller version: the ``tiny/micro`` model
learns the ReAct format and the family's tool syntax from ToolQA expert
episodes (well-formed actions rise from ~0 to a majority). The full version —
held-in task success rising from ~0 to a majority, on house-v1 easy with its
contents visible and the act prompt — is in the ``slow`` tier and is not met
yet (xfail with the measured numbers): on 2 CPU cores 300 steps take ~16
minutes, and the from-scratch model has not learnt to copy the target object.
Every test here also checks that training moved every trainable parameter
(``param_changes``, as TRL's trainer tests do).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl")

from _train_helpers import ParamChange, every_param_moved

from palaestra.agent import ReactAgent
from palaestra.env import make, tasks
from palaestra.model import get_model
from palaestra.rollout import RolloutEngine, load_config, rollout
from palaestra.train import SFTRunConfig, resolve_model_path, train_sft
from palaestra.trajectory import Episode, RunStore, to_dataset

pytestmark = pytest.mark.train

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
) -> tuple[list[Episode], list[Episode], Any]:
    data = _expert_data(tmp_path / "expert", n_train)
    assert len(data) == n_train
    base = resolve_model_path(model)
    before_eps = _evaluate(f"hf/{base}", n_eval)
    meta = train_sft(model, data, config, tmp_path / "sft")
    after_eps = _evaluate(meta.load_id, n_eval)
    return before_eps, after_eps, meta


def test_sft_learns_the_format_fast(
    tmp_path: Path, one_thread: None, param_changes: list[ParamChange]
) -> None:
    cfg = SFTRunConfig(
        method="full",
        learning_rate=5e-3,
        max_steps=100,
        batch_size=8,
        max_length=640,
        progress=False,
        logging_steps=5,
    )
    before_eps, after_eps, meta = _run(tmp_path, "tiny/micro", 48, 16, cfg)
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]
    every_param_moved(param_changes)
    assert _well_formed(before_eps) < 0.1
    replies = [m.content for ep in after_eps for m in ep.messages if m.role == "assistant"]
    assert _well_formed(after_eps) > 0.5, (losses, replies[:4])


HOUSE = "house-v1"
HOUSE_PARAMS = {"contents_visible": True}
# A world a few-million-parameter model learns in a minute (house-v1's capacity knobs):
# 12 object kinds, the target's place stated, pick tasks.
RULE_PARAMS: dict[str, Any] = {
    "contents_visible": True,
    "target_hint": True,
    "objects": 12,
    "task_type": "pick",
}
RULE_MODEL = "tiny/micro"
N_RULE_DEMOS = 640
RULE_SFT = SFTRunConfig(
    method="full",
    learning_rate=5e-3,
    max_steps=200,
    batch_size=8,
    max_length=1024,
    warmup_ratio=0.05,
    progress=False,
    logging_steps=5,
)
# Measured 2026-12-06 (2-core CPU, ~40 s of training): turns 0.0 -> 0.156, tokens 0 -> 0.88
# on 40 unseen test tasks. What is right: the format, the verbs, most receptacle names; what
# is wrong: copying the object and the hinted receptacle (see docs/evolve.md). The bar is
# half the measured gain, so the test fails when learning breaks, not on noise.
RULE_TURNS, RULE_TOKENS = 0.08, 0.8


def _house_episodes(agent: Any, model: Any, suite: list[Any]) -> list[Episode]:
    engine = RolloutEngine(agent, lambda: make(HOUSE), model, concurrency=32)
    return engine.run(suite)


def _chats(episodes: list[Episode]) -> list[list[dict[str, str]]]:
    return [[{"role": m.role, "content": m.content} for m in ep.messages] for ep in episodes]


def test_sft_learns_the_rule_not_the_episodes(
    tmp_path: Path, param_changes: list[ParamChange]
) -> None:
    """Teacher-forced next-action accuracy on expert episodes of *unseen* test tasks rises.

    Every action of these episodes names things the observation just said (the receptacle
    the hint names, the object, the destination in the instruction): a model that only
    memorised its training episodes gets them wrong; one that learnt to copy gets them
    right. At this budget the micro model learns the format and part of the rule (whole
    actions right on ~16% of unseen turns, tokens ~88%), not yet the copying: the success
    proof is the slow tier's and the quickstart's.
    """
    from palaestra.agent import ExpertAgent
    from palaestra.eval import teacher_forced_accuracy

    expert = ExpertAgent(prompt="act", max_steps=20)
    demos = _house_episodes(
        expert, None, tasks(HOUSE, "train", n=N_RULE_DEMOS, difficulty="easy", **RULE_PARAMS)
    )
    probe = _chats(
        _house_episodes(expert, None, tasks(HOUSE, "test", n=40, difficulty="easy", **RULE_PARAMS))
    )
    data = to_dataset([ep for ep in demos if ep.outcome == "success"])
    assert len(data) == N_RULE_DEMOS
    base = resolve_model_path(RULE_MODEL)
    before_model: Any = get_model(f"hf/{base}")
    before = teacher_forced_accuracy(before_model.model, before_model.tokenizer, probe)
    meta = train_sft(RULE_MODEL, data, RULE_SFT, tmp_path / "sft")
    after_model: Any = get_model(meta.load_id)
    after = teacher_forced_accuracy(after_model.model, after_model.tokenizer, probe)
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert losses[-1] < 0.3 * losses[0], losses
    every_param_moved(param_changes)  # full fine-tuning: every weight of the model
    assert before.turn_accuracy < 0.02 and before.token_accuracy < 0.2, before
    assert after.turn_accuracy > RULE_TURNS and after.token_accuracy > RULE_TOKENS, (before, after)


@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured 2026-11-25 (2-core CPU, ~16 min): tiny, 1000 house-v1 easy demos with "
    "contents_visible and the act prompt, 300 steps (lr 1e-3, batch 16): loss 6.27 -> 0.23, "
    "held-in success 0% on fresh seeds. Teacher-forced on expert episodes the model gets "
    "every receptacle right and every object word wrong: it has not learnt to copy the "
    "target object (it writes frequent object words). See docs/evolve.md.",
)
def test_sft_learns_the_family(
    tmp_path: Path, one_thread: None, param_changes: list[ParamChange]
) -> None:
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
    every_param_moved(param_changes)
    assert _success(before) < 0.1
    assert _success(after) > 0.5

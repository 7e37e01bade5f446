"""Online RL (``train rl``, engine mode): masking, groups, reward plumbing, and a tiny GRPO run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

from _train_helpers import ParamChange, every_param_moved  # noqa: E402

from palaestra.agent import get_agent  # noqa: E402
from palaestra.data import tiny_path  # noqa: E402
from palaestra.env import EnvError, Task, ToyEnv  # noqa: E402
from palaestra.model import ChatMessage, ScriptedModel  # noqa: E402
from palaestra.rollout import RolloutEngine  # noqa: E402
from palaestra.train import (  # noqa: E402
    RecordingAgent,
    RLRunConfig,
    Turn,
    episode_tokens,
    load_rl_config,
    read_metadata,
)
from palaestra.train._rl import EngineRollout, episode_rewards, loss_template  # noqa: E402
from palaestra.train._rl_episodes import TurnRecorder, task_groups  # noqa: E402
from palaestra.trajectory import RunStore  # noqa: E402

MODEL = "tiny/micro"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny_path("micro"))


class FlakyToy(ToyEnv):
    """ToyEnv whose reset raises ``EnvError`` the first ``fails[task_id]`` times for a task."""

    def __init__(self, fails: dict[str, int]) -> None:
        super().__init__()
        self.fails = fails

    def _reset(self, task: Task) -> str:
        if self.fails.get(task.task_id, 0) > 0:
            self.fails[task.task_id] -= 1
            raise EnvError("the environment server went away")
        return super()._reset(task)


def _toy_tasks(n: int) -> list[Task]:
    return [ToyEnv().make_task(seed) for seed in range(n)]


def _split(tokenizer: Any, ids: list[int], mask: list[int]) -> tuple[str, str]:
    """The text of the tokens with loss, and of those without."""
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    masked = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    return trained, masked


# ---- config -------------------------------------------------------------------------------


def test_config_checks_groups_and_reads_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of num_generations"):
        RLRunConfig(batch_size=6, num_generations=4)
    with pytest.raises(ValueError, match="orm"):
        RLRunConfig(orm_weight=0.5)
    f = tmp_path / "rl.yaml"
    f.write_text("algorithm: rloo\nnum_generations: 2\nbatch_size: 4\nbeta: 0.0\n")
    cfg = load_rl_config(f, beta=0.1, env=None)
    assert (cfg.algorithm, cfg.num_generations, cfg.batch_size, cfg.beta) == ("rloo", 2, 4, 0.1)


# ---- masking ------------------------------------------------------------------------------


def _turns() -> list[Turn]:
    first = [
        ChatMessage(role="system", content="Walk the number line."),
        ChatMessage(role="user", content="Stop on 1. You are at 0."),
    ]
    second = [
        *first,
        ChatMessage(role="assistant", content="Thought: go up\nAction: inc"),
        ChatMessage(role="user", content="You are at 1."),
    ]
    return [Turn(first, "Thought: go up\nAction: inc"), Turn(second, "Action: stop")]


def test_environment_tokens_carry_no_loss(tokenizer: Any) -> None:
    tmpl = loss_template(tokenizer)
    toks = episode_tokens(tokenizer, _turns(), loss_template=tmpl, max_length=4096)
    assert len(toks.completion_ids) == len(toks.env_mask)
    trained, masked = _split(tokenizer, toks.completion_ids, toks.env_mask)
    # Exactly the model's replies, each with its end-of-turn token, carry loss.
    assert trained == "Thought: go up\nAction: inc<|im_end|>Action: stop<|im_end|>"
    assert "You are at 1." in masked and "<|im_start|>user" in masked
    assert "Action" not in masked
    prompt = tokenizer.decode(toks.prompt_ids)
    assert prompt.endswith("<|im_start|>assistant\n") and "Stop on 1." in prompt
    # The completion ends on the last trained token (the end of the final reply).
    assert toks.env_mask[-1] == 1 and toks.completion_ids[-1] == tokenizer.eos_token_id
    assert (toks.kept_turns, toks.truncated) == (2, False)


def test_a_turn_whose_history_was_cut_ends_the_sequence(tokenizer: Any) -> None:
    first, second = _turns()
    # The agent dropped old turns from the second prompt (out of context budget).
    cut = Turn([second.messages[0], second.messages[-1]], second.text)
    toks = episode_tokens(
        tokenizer, [first, cut], loss_template=loss_template(tokenizer), max_length=4096
    )
    trained, _ = _split(tokenizer, toks.completion_ids, toks.env_mask)
    assert toks.kept_turns == 1 and trained == "Thought: go up\nAction: inc<|im_end|>"


def test_long_episodes_are_cut_at_max_length(tokenizer: Any) -> None:
    tmpl = loss_template(tokenizer)
    full = episode_tokens(tokenizer, _turns(), loss_template=tmpl, max_length=4096)
    limit = len(full.prompt_ids) + 5
    cut = episode_tokens(tokenizer, _turns(), loss_template=tmpl, max_length=limit)
    assert cut.truncated and len(cut.prompt_ids) + len(cut.completion_ids) == limit
    assert cut.completion_ids == full.completion_ids[:5]
    assert cut.env_mask == full.env_mask[:5]


def test_an_episode_without_a_model_call_carries_no_loss(tokenizer: Any) -> None:
    toks = episode_tokens(tokenizer, [], loss_template=loss_template(tokenizer), max_length=64)
    assert toks.env_mask == [0] and len(toks.completion_ids) == 1 and toks.kept_turns == 0


def test_recorded_agent_turns_form_one_masked_sequence(tokenizer: Any) -> None:
    """The react agent's own conversation (format error included) becomes one masked sequence."""
    task = ToyEnv().make_task(0)  # target in 1..3
    target = int(task.instruction.split()[-1].rstrip("."))
    replies = ["I am not sure."] + ["Action: inc"] * target + ["Action: stop"]
    recorder = TurnRecorder()
    agent = RecordingAgent(get_agent("react", max_steps=10), recorder)
    (episode,) = RolloutEngine(agent, ToyEnv, ScriptedModel(replies)).run([task])
    assert episode.outcome == "success"
    turns = recorder.pop(task.task_id, 0)
    assert [t.text for t in turns] == replies
    toks = episode_tokens(tokenizer, turns, loss_template=loss_template(tokenizer), max_length=8192)
    trained, masked = _split(tokenizer, toks.completion_ids, toks.env_mask)
    assert toks.kept_turns == len(replies)
    assert trained == "".join(f"{r}<|im_end|>" for r in replies)
    assert "'Action:'" in masked  # the format-error feedback is the environment's side
    assert "You are at 1" in masked


# ---- groups and rewards --------------------------------------------------------------------


def test_task_groups_are_runs_of_equal_prompts() -> None:
    assert task_groups(["a", "a", "b", "b", "a", "a"], 2) == ["a", "b", "a"]
    with pytest.raises(ValueError, match="mixes"):
        task_groups(["a", "b", "b", "b"], 2)
    with pytest.raises(ValueError, match="whole groups"):
        task_groups(["a", "a", "a"], 2)


def test_an_environment_error_is_unscorable_not_zero() -> None:
    (task,) = _toy_tasks(1)
    fails = {task.task_id: 1}
    engine = RolloutEngine(get_agent("expert"), lambda: FlakyToy(fails), max_retries=0)
    episodes = sorted(engine.run([task], attempts=3), key=lambda e: e.attempt)
    assert sorted(e.outcome for e in episodes) == ["error", "success", "success"]
    cols = episode_rewards(episodes, orm_scores=[0.3, 0.6, 0.9])
    for i, ep in enumerate(episodes):
        if ep.outcome == "error":
            assert cols["env_score"][i] is None
            assert cols["env_progress"][i] is None
            assert cols["orm_score"][i] is None
        else:
            assert cols["env_score"][i] == 1.0 and cols["env_progress"][i] == 1.0
            assert cols["orm_score"][i] in (0.3, 0.6, 0.9)


def test_rollout_plays_whole_groups_and_stores_them(tmp_path: Path, tokenizer: Any) -> None:
    """Each group is G fresh attempts of its task; a task drawn twice in a batch plays 2G."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_path("micro"))
    task_list = _toy_tasks(2)
    a, b = (t.task_id for t in task_list)
    cfg = RLRunConfig(num_generations=2, batch_size=2, max_turns=1, max_new_tokens=4, max_retries=0)
    store = RunStore(tmp_path / "episodes")
    fails = {b: 1}
    rollout = EngineRollout(cfg, task_list, tokenizer, store=store, envs=lambda: FlakyToy(fails))
    logged: dict[str, float] = {}

    class Trainer:
        class accelerator:
            @staticmethod
            def unwrap_model(m: Any) -> Any:
                return m

        def __init__(self) -> None:
            self.model = model

        def _log_metric(self, name: str, value: float) -> None:
            logged[name] = value

    out = rollout([a, a, b, b, a, a], Trainer())
    assert len(out["completion_ids"]) == 6
    assert out["env_score"][2:4].count(None) == 1  # b's first reset failed: unscorable
    assert all(s == 0.0 for i, s in enumerate(out["env_score"]) if i not in (2, 3))
    err = out["env_score"].index(None)
    assert sum(out["env_mask"][err]) == 0
    assert logged["rl/error_rate"] == pytest.approx(1 / 6)
    stored = list(store.episodes())
    store.close()
    assert len(stored) == 6
    assert sorted((e.task.task_id, e.attempt) for e in stored) == sorted(
        [(a, i) for i in range(4)] + [(b, i) for i in range(2)]
    )
    assert {e.metadata["rl_group"] for e in stored} == {0, 1, 2}


# ---- end to end ----------------------------------------------------------------------------


@pytest.mark.train
def test_grpo_trains_on_engine_episodes(
    tmp_path: Path,
    tokenizer: Any,
    param_changes: list[ParamChange],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A few GRPO steps on tiny/micro: episodes stored, masks and advantages as designed, weights move."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    import palaestra.train._rl as rl

    # The untrained tiny model never succeeds, so every real reward is 0 and GRPO has no
    # signal: score the attempts 0, 1, 2 instead (the plumbing is what is under test).
    original = rl.episode_rewards

    def ranked(episodes: Any, orm_scores: Any = None) -> dict[str, list[float | None]]:
        cols = original(episodes, orm_scores)
        cols["env_score"] = [
            None if s is None else float(ep.attempt)
            for s, ep in zip(cols["env_score"], episodes, strict=True)
        ]
        return cols

    monkeypatch.setattr(rl, "episode_rewards", ranked)
    seen: list[dict[str, Any]] = []
    generate: Callable[..., Any] = GRPOTrainer._generate_and_score_completions  # pyright: ignore[reportPrivateUsage]

    def capture(self: Any, inputs: Any) -> Any:
        out = generate(self, inputs)
        seen.append(out)
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", capture)
    task_list = _toy_tasks(2)
    fails = {t.task_id: 1 for t in task_list}  # one error in each group
    cfg = RLRunConfig(
        env="toy-v1",
        prompt="compact",
        n=2,
        num_generations=3,
        batch_size=3,
        max_steps=2,
        max_turns=2,
        max_new_tokens=8,
        max_retries=0,
        learning_rate=1e-2,
        progress=False,
    )
    out = tmp_path / "rl"
    meta = rl.train_rl(MODEL, cfg, out, envs=lambda: FlakyToy(fails), task_list=task_list)

    every_param_moved(param_changes)
    assert read_metadata(out).kind == "rl" and meta.method == "lora"
    assert (out / "adapter_config.json").is_file()
    logged = [h for h in meta.log_history if "reward" in h]
    assert logged and all("rl/success_rate" in h and "kl" in h for h in logged)
    episodes = list(RunStore(out / "episodes", readonly=True).episodes())
    assert len(episodes) == 6 and sum(e.outcome == "error" for e in episodes) == 2
    assert {e.metadata["rl_step"] for e in episodes} == {0, 1}

    assert len(seen) == 2
    for batch in seen:
        loss_mask = batch["completion_mask"] * batch["tool_mask"]
        for row in range(3):
            ids = batch["completion_ids"][row].tolist()
            mask = loss_mask[row].tolist()
            if sum(mask) == 0:  # the errored episode: no loss, no advantage
                assert batch["advantages"][row].item() == 0.0
                continue
            assert batch["advantages"][row].item() != 0.0
            trained, masked = _split(tokenizer, ids, mask)
            assert "<|im_start|>" not in trained and trained.endswith("<|im_end|>")
            if "<|im_start|>" in tokenizer.decode(ids):  # a second turn: its feedback is masked
                assert "<|im_start|>user" in masked
        assert sum(1 for row in range(3) if loss_mask[row].sum() == 0) == 1


@pytest.mark.train
def test_cli_train_rl(tmp_path: Path) -> None:
    """``palaestra train rl``: flags from the config, a real environment, episodes viewable."""
    import typer
    from typer.testing import CliRunner

    from palaestra.cli.train import train_app

    app = typer.Typer()
    app.add_typer(train_app, name="train")
    runner = CliRunner()
    out = tmp_path / "rl"
    base = ["train", "rl", "--model", MODEL, "--out", str(out), "--env", "maze-v1", "--n", "1"]
    res = runner.invoke(app, [*base, "--batch-size", "3", "--num-generations", "2"])
    assert res.exit_code != 0 and "multiple of num_generations" in res.output
    small = ["--num-generations", "2", "--batch-size", "2", "--max-steps", "1"]
    agent = ["--max-turns", "1", "--max-new-tokens", "4", "--prompt", "compact"]
    res = runner.invoke(app, [*base, *small, *agent, "--algorithm", "rloo", "--lr", "0.01"])
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta.config["algorithm"] == "rloo" and meta.config["max_steps"] == 1
    store = RunStore(out / "episodes", readonly=True)
    run = store.run()
    assert run is not None and run.kind == "rl"
    assert len(list(store.episodes())) == 2

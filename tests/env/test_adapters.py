"""The Gymnasium and TRL adapters, on ToyEnv and on every registered environment."""

from __future__ import annotations

import importlib
import inspect
import string
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from palaestra.env import EnvError, StepLimit, Task, ToyEnv, registry
from palaestra.env import _registry as registry_module

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env as gym_check_env  # noqa: E402

from palaestra.env.adapters import (  # noqa: E402
    PalaestraTRLEnv,
    tasks_dataset,
    to_gymnasium,
    trl_environment_factory,
)
from palaestra.env.adapters.gymnasium import to_ascii_text  # noqa: E402
from palaestra.env.adapters.trl import dataset_of_tasks, tool_intro  # noqa: E402


def _importable(env_id: str) -> str | None:
    """Why ``env_id`` cannot be built yet (its module is still being written), or None."""
    try:
        registry()[env_id].load()
    except ImportError as e:
        return str(e)
    return None


ENV_IDS = [
    pytest.param(
        i,
        marks=pytest.mark.skip(reason=f"{i}: module does not import yet: {why}")
        if (why := _importable(i))
        else (),
    )
    # External adapters (servers, extras) have their own tests in tests/env/external/.
    for i, s in registry().items()
    if s.source == "palaestra"
]


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register ``toy-v1`` for one test only (the registry is global)."""
    registry()  # load the built-ins first so the monkeypatch undoes only our entry
    monkeypatch.setitem(
        registry_module._REGISTRY,
        "toy-v1",
        registry_module.EnvSpec("toy-v1", ToyEnv, max_episode_steps=10),
    )
    yield


def _check_gym(adapter: Any, *expected: str) -> None:
    """Gymnasium's own checker; any warning but the irrelevant render-fps one (and ``expected``)
    fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(adapter)
    allowed = ("render fps", *expected)
    problems = [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]
    assert not problems, problems


# ---- Gymnasium ---------------------------------------------------------------


def test_gym_check_env_on_toy_with_spec() -> None:
    adapter = to_gymnasium(ToyEnv, render_mode="ansi")
    # With a spec, check_env also asserts seeded-reset determinism and remakes the env.
    assert adapter.spec is not None and adapter.spec.id == "toy-v1"
    _check_gym(adapter)


def test_gym_check_env_on_toy_instance_and_task_list() -> None:
    env = ToyEnv()
    suite = [env.make_task(s, "test", "medium") for s in range(5)]
    adapter = to_gymnasium(env, suite)
    assert adapter.spec is None  # an instance cannot be rebuilt
    _check_gym(adapter, "not having a spec")
    picked = {adapter.reset(seed=s)[1]["task_id"] for s in range(40)}
    assert picked == {t.task_id for t in suite}


def test_gym_reset_seed_is_the_task_seed_and_unseeded_resets_are_reproducible() -> None:
    adapter = to_gymnasium(ToyEnv)
    obs, info = adapter.reset(seed=5)
    assert info["task_id"] == ToyEnv().make_task(5).task_id
    assert obs == ToyEnv().reset(ToyEnv().make_task(5)).text
    after_5 = [adapter.reset()[1]["task_id"] for _ in range(6)]
    adapter.reset(seed=5)
    assert [adapter.reset()[1]["task_id"] for _ in range(6)] == after_5
    assert len(set(after_5)) > 1  # unseeded resets draw new tasks


def test_gym_options_task_and_episode_flow() -> None:
    env = ToyEnv()
    task = env.make_task(11, "heldout", "hard")
    adapter = to_gymnasium(env, render_mode="ansi")
    for given in (task, task.model_dump_json(), task.model_dump(mode="json")):
        _, info = adapter.reset(seed=0, options={"task": given})
        assert info["task_id"] == task.task_id
        assert info["instruction"] == task.instruction
    obs, reward, terminated, truncated, info = adapter.step("jump")
    assert info["invalid"] and info["invalid_kind"] == "malformed" and not terminated
    assert "inc, dec, stop" in obs and adapter.render() == obs
    while (action := env.expert()) != "stop":
        adapter.step(action)
    obs, reward, terminated, truncated, info = adapter.step("stop")
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert isinstance(reward, float)


def test_gym_step_limit_is_truncation() -> None:
    adapter = to_gymnasium(StepLimit(ToyEnv(), 2))
    adapter.reset(seed=0)
    assert adapter.step("dec")[3] is False
    _, _, terminated, truncated, _ = adapter.step("dec")
    assert (terminated, truncated) == (False, True)


def test_gym_make_from_spec_builds_a_fresh_equivalent_env() -> None:
    adapter = to_gymnasium(ToyEnv, max_length=50)
    made = gymnasium.make(adapter.spec)
    assert made.unwrapped is not adapter
    assert made.unwrapped.env is not adapter.env
    assert made.reset(seed=3)[0] == adapter.reset(seed=3)[0]
    assert made.observation_space.max_length == 50
    made.close()


def test_to_ascii_text_folds_and_truncates() -> None:
    raw = "Caf\u00e9 \u201cquoted\u201d \u2014 it\u2019s 5\u00a0\u00d7\u00a03 \u2026 \u4e2d\u6587 \U0001f600"
    text, cut = to_ascii_text(raw)
    assert text == 'Cafe "quoted" - it\'s 5 x 3 ...  '
    assert not cut and set(text) <= set(string.printable)
    text, cut = to_ascii_text("x" * 100, 20)
    assert cut and len(text) == 20 and text.endswith("[...]")


class _Unicode(ToyEnv):
    def _reset(self, task: Task) -> str:
        return "\u2014 Gr\u00fc\u00dfe \u2014 " + "y" * 500 + super()._reset(task)


def test_gym_observations_are_sanitised_and_truncation_is_noted() -> None:
    adapter = to_gymnasium(_Unicode, max_length=64)
    obs, info = adapter.reset(seed=0)
    assert obs in adapter.observation_space
    assert obs.startswith("- Grusse - yyy") and len(obs) == 64
    assert info["text_truncated"] is True
    obs, _, _, _, info = adapter.step("inc")
    assert obs == "You are at 1." and info["text_truncated"] is False
    _check_gym(adapter)


def test_gym_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_length"):
        to_gymnasium(ToyEnv, max_length=0)
    with pytest.raises(ValueError, match="tasks is empty"):
        to_gymnasium(ToyEnv, [])
    with pytest.raises(TypeError, match="not an Environment"):
        to_gymnasium(lambda: object())  # type: ignore[arg-type, return-value]
    adapter = to_gymnasium(ToyEnv)
    with pytest.raises(TypeError, match="options"):
        adapter.reset(options={"task": 42})


def test_gym_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # makes `import gymnasium` fail
    monkeypatch.delitem(sys.modules, "palaestra.env.adapters.gymnasium")
    with pytest.raises(ImportError) as err:
        importlib.import_module("palaestra.env.adapters.gymnasium")
    assert 'pip install "palaestra[gym]"' in str(err.value).splitlines()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gym_check_env_on_registered(env_id: str) -> None:
    adapter = to_gymnasium(env_id, render_mode="ansi")
    assert adapter.spec is not None
    _check_gym(adapter)
    # Every observation along an expert episode fits the space.
    obs, _ = adapter.reset(seed=1)
    steps = 0
    while True:
        assert obs in adapter.observation_space
        obs, reward, terminated, truncated, _ = adapter.step(adapter.env.expert())
        steps += 1
        if terminated or truncated:
            break
    assert obs in adapter.observation_space
    assert terminated and reward > 0, (env_id, steps)
    adapter.close()


# ---- TRL: the protocol ---------------------------------------------------------


def _tool_methods(env: object) -> list[str]:
    """The tools GRPOTrainer (TRL 1.16) finds on an environment: public functions of its class."""
    return [
        name
        for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]


def test_trl_env_exposes_exactly_one_tool_with_a_valid_schema() -> None:
    from transformers.utils import get_json_schema

    env = trl_environment_factory(ToyEnv)()
    assert _tool_methods(env) == ["act"]
    schema = get_json_schema(env.act)
    fn = schema["function"]
    assert fn["name"] == "act"
    assert fn["parameters"]["required"] == ["action"]
    assert fn["parameters"]["properties"]["action"]["type"] == "string"
    assert fn["parameters"]["properties"]["action"]["description"]
    assert fn["description"].startswith("Take one action")


def test_trl_episode_through_the_protocol(toy_registered: None) -> None:
    ds = tasks_dataset("toy-v1", "train", 3, "easy")
    assert ds.column_names == ["prompt", "task", "task_id", "env_id"]
    row = ds[1]
    assert row["prompt"][0]["role"] == "user" and "inc | dec | stop" in row["prompt"][0]["content"]
    env = trl_environment_factory("toy-v1")()
    first = env.reset(**row)  # GRPOTrainer passes every column of the row
    task = Task.from_json(row["task"])
    assert env.task == task and first == ToyEnv().reset(task).text
    assert env.act("fly").startswith("Unknown action")
    expert = ToyEnv()
    expert.reset(task)
    while (action := expert.expert()) != "stop":
        expert.step(action)
        assert not env.act(action).startswith("[")
    final = env.act("stop")
    assert "Correct!" in final and "episode is over: solved, score 1.00" in final
    assert env.done and env.get_reward() == 1.0
    assert "episode is over" in env.act("inc")  # feedback, not an exception
    assert env.actions[-1] == "stop" and env.rewards[-1] == 1.0
    env.reset(**ds[0])  # pooled instances are reused: reset clears the episode
    assert env.actions == () and env.get_reward() == 0.0 and not env.done


def test_trl_step_limit_and_unfinished_episode(toy_registered: None) -> None:
    row = tasks_dataset("toy-v1", n=1)[0]
    env = trl_environment_factory("toy-v1", max_episode_steps=2)()
    env.reset(**row)
    assert env.get_reward() == 0.0  # nothing done yet: score 0, not None
    env.act("dec")
    assert "step limit reached" in env.act("dec") and env.done


def test_trl_infrastructure_failure_is_unscorable_not_zero() -> None:
    def boom(action: str) -> None:
        raise EnvError("simulator crashed")

    env = trl_environment_factory(lambda: ToyEnv(on_step=boom))()
    env.reset(task=ToyEnv().make_task(0))
    assert "simulator crashed" in env.act("inc")
    assert env.error == "simulator crashed" and env.get_reward() is None
    assert "failed" in env.act("inc")


def test_trl_env_records_results_success_and_progress(toy_registered: None) -> None:
    env = trl_environment_factory("toy-v1")()
    assert _tool_methods(env) == ["act"]  # the new views are properties, not tools
    task = ToyEnv().make_task(1)  # "Stop on the number 1."
    env.reset(task=task)
    assert env.progress == 0.0 and not env.success and env.results == ()
    first = env.act("inc")
    final = env.act("stop")
    assert env.results == (first, final)  # exactly what the model was handed, in order
    assert env.success and env.progress == 1.0 and env.get_reward() == 1.0
    env.overflow = "a tool result of 40 tokens did not fit"
    assert env.get_reward() is None and env.progress is None  # unscorable, not 0
    env.reset(task=task)  # a pooled instance starts clean
    assert env.overflow is None and env.results == () and not env.success


def test_trl_dataset_of_given_tasks(toy_registered: None) -> None:
    suite = [ToyEnv().make_task(s) for s in (4, 2)]
    intro = tool_intro(ToyEnv())
    ds = dataset_of_tasks(suite, intro=intro)
    assert ds["task_id"] == [t.task_id for t in suite]
    assert ds[0]["prompt"] == [{"role": "user", "content": intro}]
    assert "inc | dec | stop" in intro
    assert tasks_dataset("toy-v1", n=1)[0]["prompt"][0]["content"] == intro


def test_trl_rows_without_task_draw_fresh_tasks_when_asked() -> None:
    factory = trl_environment_factory(ToyEnv, split="test", difficulty="hard", start=7)
    a, b = factory(), factory()
    a.reset(prompt=[{"role": "user", "content": ""}])
    b.reset(prompt=[{"role": "user", "content": ""}])
    assert a.task is not None and b.task is not None
    assert (a.task.seed, b.task.seed) == (7, 8)  # one seed sequence shared by all instances
    assert a.task.split == "test" and a.task.difficulty == "hard"
    with pytest.raises(ValueError, match="no 'task' column"):
        trl_environment_factory(ToyEnv)().reset(prompt=[])
    with pytest.raises(KeyError, match="no environment"):
        trl_environment_factory("nope-v1")


def test_trl_tool_call_round_trip_with_trl_helpers() -> None:
    """The path GRPOTrainer takes for a tool call, with TRL's own helpers: render the tool schema
    into the prompt, parse the model's tool call, call the method, render the tool message."""
    from trl.chat_template_utils import add_response_schema, parse_response, supports_tool_calling

    tokenizer = _tiny_tokenizer(["Stop on the number 1."])
    assert supports_tool_calling(tokenizer)
    add_response_schema(tokenizer)
    env = trl_environment_factory(ToyEnv)()
    first = env.reset(task=ToyEnv().make_task(1).model_dump_json())
    messages = [{"role": "user", "content": "Play.\n\n" + first}]
    prompt_ids = tokenizer.apply_chat_template(
        messages, tools=[env.act], add_generation_prompt=True, return_dict=False
    )
    prompt = tokenizer.decode(prompt_ids)
    assert '"name": "act"' in prompt and "Stop on the number 1." in prompt
    reply = '<tool_call>\n{"name": "act", "arguments": {"action": "inc"}}\n</tool_call><|im_end|>'
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    parsed = parse_response(tokenizer, reply_ids, prefix=prompt_ids, tools=[env.act])
    (call,) = parsed["tool_calls"]
    tools = {m.__name__: m for m in (env.act,)}
    result = tools[call["function"]["name"]](**call["function"]["arguments"])
    assert result == "You are at 1." and env.actions == ("inc",)
    rendered = tokenizer.apply_chat_template(
        [*messages, parsed, {"role": "tool", "name": "act", "content": result}],
        tools=[env.act],
        tokenize=False,
    )
    assert "<tool_response>\nYou are at 1.\n</tool_response>" in rendered


# ---- TRL: a real GRPOTrainer -------------------------------------------------------


def _tiny_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE tokenizer trained offline on ``texts``, with a tool-calling chat template.

    It uses TRL's copy of the Qwen2.5 template, which TRL knows how to parse tool
    calls from (``add_response_schema``) and which renders tool schemas and tool messages.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        [qwen2_5_chat_template, *texts],
        trainers.BpeTrainer(
            vocab_size=1000,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    tokenizer.add_tokens(["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"])
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


def _call(action: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "act", "arguments": {"action": action}}}


@pytest.mark.train
def test_grpo_trainer_trains_two_steps_on_the_environment(
    toy_registered: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    # One thread: tiny matrices gain nothing from more, and on a busy 2-core machine
    # oversubscribed threads make each step ~25x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _grpo_two_steps(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _grpo_two_steps(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    start = time.perf_counter()
    # Seed 1 of toy-v1 easy is "Stop on the number 1.": solved by act("inc"), act("stop").
    ds = tasks_dataset("toy-v1", "train", n=1, difficulty="easy", start=1)
    task = Task.from_json(ds[0]["task"])
    assert task.instruction == "Stop on the number 1."
    made: list[PalaestraTRLEnv] = []
    base = trl_environment_factory("toy-v1")

    def factory() -> PalaestraTRLEnv:
        env = base()
        made.append(env)
        return env

    # A random tiny model never writes a parsable tool call, so it first memorises one
    # solved episode (a few seconds); sampling then follows it closely enough to call the tool.
    scratch = base()
    first = scratch.reset(**ds[0])
    conversation = [
        {"role": "user", "content": ds[0]["prompt"][0]["content"] + first},
        {"role": "assistant", "content": "", "tool_calls": [_call("inc")]},
        {"role": "tool", "name": "act", "content": "You are at 1."},
        {"role": "assistant", "content": "", "tool_calls": [_call("stop")]},
        {"role": "tool", "name": "act", "content": "You stop. Correct!"},
        {"role": "assistant", "content": "Done."},
    ]
    draft = _tiny_tokenizer([])
    tokenizer = _tiny_tokenizer(
        [draft.apply_chat_template(conversation, tools=[scratch.act], tokenize=False)]
    )
    ids = tokenizer.apply_chat_template(conversation, tools=[scratch.act], return_dict=False)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    x = torch.tensor([ids])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(
        f"memorised {len(ids)} tokens: loss {loss.item():.3f} ({time.perf_counter() - start:.1f} s)"
    )
    assert loss.item() < 0.1

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=96,
        max_tool_calling_iterations=3,
        max_steps=2,
        learning_rate=1e-4,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        environment_factory=factory,
    )
    trainer.train()
    elapsed = time.perf_counter() - start
    print(f"GRPO test: {elapsed:.1f} s; episodes: {[(e.actions, e.get_reward()) for e in made]}")

    assert trainer.state.global_step == 2
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2
    # The environment's get_reward is a reward source, logged under the class name.
    assert all("rewards/PalaestraTRLEnv/mean" in h for h in logs)
    assert any(h["tools/call_frequency"] > 0 for h in logs)
    # One instance per rollout (batch of 2), the probe reused; each reset with the row's task.
    assert len(made) == 2
    for env in made:
        assert env.task == task
    # The last batch: the instances hold its episodes, and the logged reward is theirs.
    rewards = [env.get_reward() for env in made]
    assert logs[-1]["rewards/PalaestraTRLEnv/mean"] == pytest.approx(sum(rewards) / 2)
    called = [env for env in made if env.actions]
    assert called, "the trainer never called the act tool"
    assert all(env.actions[0] == "inc" for env in called)

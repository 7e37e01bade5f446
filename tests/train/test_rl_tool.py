"""``train rl --mode tool``: tool-calling templates (tiny, Gemma 3), the overflow check, tiny GRPO runs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

from trl.chat_template_utils import (  # noqa: E402
    is_chat_template_prefix_preserving,
    supports_tool_calling,
)

from palaestra.data import tiny_path  # noqa: E402
from palaestra.env import Task, ToyEnv  # noqa: E402
from palaestra.env.adapters.trl import PalaestraTRLEnv  # noqa: E402
from palaestra.model import resolve_template, tool_template_for  # noqa: E402
from palaestra.model._templates import (  # noqa: E402
    CHATML_TEMPLATE,
    masking_problem,
    rendering_problem,
)
from palaestra.model._tool_templates import CHATML_TOOL_TEMPLATE, GEMMA3_TOOL_TEMPLATE  # noqa: E402
from palaestra.train import RLRunConfig  # noqa: E402
from palaestra.train._rl import build_rl_trainer  # noqa: E402
from palaestra.train._rl_tool import dropped_results, tool_tokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_templates_masking import make_tokenizer  # noqa: E402

MODEL = "tiny/micro"


def act(action: str) -> str:
    """Take one action in the environment.

    Args:
        action: The action to take.
    """
    return action


TOOLS = [transformers.utils.get_json_schema(act)]
CALL = {"type": "function", "function": {"name": "act", "arguments": {"action": "go to sink 1"}}}
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an agent in a house."},
    {"role": "user", "content": "Task: put a clean apple in the fridge."},
    {"role": "assistant", "content": "I look around.", "tool_calls": [CALL]},
    {"role": "tool", "name": "act", "content": "You arrive at sink 1."},
    {"role": "assistant", "content": "Done."},
]


@pytest.fixture(scope="module")
def tiny_tok() -> Any:
    return tool_tokenizer(transformers.AutoTokenizer.from_pretrained(tiny_path("micro")))


@pytest.fixture(scope="module")
def gemma_tok() -> Any:
    """A locally trained tokenizer carrying Gemma 3's real chat template (as TRL ships it)."""
    return make_tokenizer("gemma3")


def _roundtrip(tok: Any) -> None:
    """The rendered reply parses back to the message; the prompt is a prefix of the conversation."""
    prompt = tok.apply_chat_template(
        CONVERSATION[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    upto_call = tok.apply_chat_template(CONVERSATION[:3], tools=TOOLS, tokenize=False)
    whole = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert upto_call.startswith(prompt) and whole.startswith(upto_call)
    assert '"name": "act"' in prompt  # the tool's schema is in the prompt
    assert "You arrive at sink 1." in whole[len(upto_call) :]
    reply = upto_call[len(prompt) :].rstrip("\n")
    ids = tok(reply, add_special_tokens=False)["input_ids"]
    prefix = tok(prompt, add_special_tokens=False)["input_ids"]
    parsed = tok.parse_response(ids, prefix=prefix, tools=TOOLS)
    assert parsed == {"role": "assistant", "content": "I look around.", "tool_calls": [CALL]}
    plain = tok.parse_response(tok("Done.", add_special_tokens=False)["input_ids"], prefix=prefix)
    assert plain == {"role": "assistant", "content": "Done."}
    assert supports_tool_calling(tok) and is_chat_template_prefix_preserving(tok)


def test_tiny_tool_template_renders_and_parses_tool_calls(tiny_tok: Any) -> None:
    assert tiny_tok.chat_template == CHATML_TOOL_TEMPLATE
    _roundtrip(tiny_tok)
    # Without tools it is the tiny model's own template, masks included.
    plain = [{"role": m["role"], "content": m["content"]} for m in CONVERSATION if "name" not in m]
    assert rendering_problem(tiny_tok, CHATML_TEMPLATE, CHATML_TOOL_TEMPLATE) is None
    assert masking_problem(tiny_tok, CHATML_TOOL_TEMPLATE) is None
    assert tiny_tok.apply_chat_template(plain, tokenize=False) == tiny_tok.apply_chat_template(
        plain, tokenize=False, chat_template=CHATML_TEMPLATE
    )


def test_the_saved_tokenizer_keeps_the_models_template() -> None:
    own = transformers.AutoTokenizer.from_pretrained(tiny_path("micro"))
    assert not supports_tool_calling(own)  # why tool mode needs these templates at all
    tool_tokenizer(own)
    assert own.chat_template == CHATML_TEMPLATE and getattr(own, "response_template", None) is None
    assert resolve_template("chatml-tools") == CHATML_TOOL_TEMPLATE
    assert resolve_template("gemma3-tools") == GEMMA3_TOOL_TEMPLATE


def test_gemma3_tool_template_renders_and_parses_tool_calls(gemma_tok: Any) -> None:
    real = gemma_tok.chat_template
    assert not supports_tool_calling(gemma_tok)
    found = tool_template_for(real)
    assert found is not None and found[0] == "gemma3" and found[1] == GEMMA3_TOOL_TEMPLATE
    # Plain alternating conversations render exactly as Gemma 3's own template renders them.
    assert rendering_problem(gemma_tok, real, GEMMA3_TOOL_TEMPLATE) is None
    assert masking_problem(gemma_tok, GEMMA3_TOOL_TEMPLATE) is None
    tok = tool_tokenizer(gemma_tok)
    _roundtrip(tok)
    whole = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert "```tool_code\n" in whole and "```tool_output\nYou arrive at sink 1.\n```" in whole
    assert "<start_of_turn>tool" not in whole  # Gemma has no tool role


def test_unknown_families_get_no_tool_template() -> None:
    assert tool_template_for(None) is None
    assert tool_template_for("{{ messages[0]['content'] }}") is None


# ---- overflow ------------------------------------------------------------------------------


def test_a_dropped_tool_result_is_found_and_unscorable() -> None:
    env = PalaestraTRLEnv(ToyEnv())
    env.reset(task=ToyEnv().make_task(0))
    first, second = env.act("inc"), env.act("inc")
    shown = [
        {"role": "assistant", "content": ""},
        {"role": "tool", "name": "act", "content": first},
        {"role": "assistant", "content": ""},
    ]
    assert dropped_results(env, shown) == [second]
    assert dropped_results(env, [*shown, {"role": "tool", "name": "act", "content": second}]) == []
    assert env.get_reward() is not None and env.progress is not None
    env.overflow = "a tool result of 9 tokens did not fit"
    assert env.get_reward() is None and env.progress is None


# ---- end to end: GRPO with TRL's tool loop on tiny/micro -----------------------------------

CALL_TEXT = '<tool_call>\n{"name": "act", "arguments": {"action": "inc"}}\n</tool_call><|im_end|>'


def _toy_tasks(n: int) -> list[Task]:
    return [ToyEnv().make_task(seed) for seed in range(n)]


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any, list[bool]], None]]:
    """Make a trainer's model "reply" with a tool call (True) or plain text (False), per row."""

    def install(trainer: Any, calls: list[bool]) -> None:
        tok = trainer.processing_class
        call = tok(CALL_TEXT, add_special_tokens=False)["input_ids"]
        stop = tok("I stop.<|im_end|>", add_special_tokens=False)["input_ids"]

        def generate(self: Any, prompt_ids: list[Any], *_: Any, **__: Any) -> Any:
            # First turn: one reply per row as scripted; later turns (tool rounds): calls.
            first = len(prompt_ids) == len(calls) and not getattr(self, "_scripted_started", False)
            rows = calls if first else [True] * len(prompt_ids)
            self._scripted_started = first or getattr(self, "_scripted_started", False)
            return [list(call if c else stop) for c in rows], None

        monkeypatch.setattr(type(trainer), "_generate_single_turn", generate)

        original = type(trainer)._generate

        def fresh(self: Any, prompts: Any) -> Any:
            self._scripted_started = False
            return original(self, prompts)

        monkeypatch.setattr(type(trainer), "_generate", fresh)

    yield install


def _capture(monkeypatch: pytest.MonkeyPatch, trainer: Any) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"batches": [], "rewards": []}
    cls = type(trainer)
    score, rewards = cls._generate_and_score_completions, cls._calculate_rewards

    def capture(self: Any, inputs: Any) -> Any:
        out = score(self, inputs)
        seen["batches"].append(out)
        return out

    def capture_rewards(self: Any, *args: Any) -> Any:
        out = rewards(self, *args)
        seen["rewards"].append(out.clone())
        return out

    monkeypatch.setattr(cls, "_generate_and_score_completions", capture)
    monkeypatch.setattr(cls, "_calculate_rewards", capture_rewards)
    return seen


def _config(**kw: Any) -> RLRunConfig:
    base: dict[str, Any] = {
        "mode": "tool",
        "n": 2,
        "num_generations": 2,
        "batch_size": 2,
        "max_steps": 1,
        "max_turns": 2,
        "learning_rate": 1e-2,
        "progress": False,
        "progress_weight": 0.5,
        "score_weight": 2.0,
    }
    return RLRunConfig(**{**base, **kw})


def test_tool_mode_refuses_an_orm() -> None:
    with pytest.raises(ValueError, match="tool mode"):
        RLRunConfig(mode="tool", orm="some/orm")


@pytest.mark.train
def test_grpo_trains_through_trls_tool_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted: Any
) -> None:
    """GRPOTrainer accepts tiny's tool template; tool calls step the environment; results carry no loss."""
    cfg = _config(max_length=512)
    trainer, tokenizer, _, rollout = build_rl_trainer(
        MODEL, cfg, tmp_path, envs=ToyEnv, task_list=_toy_tasks(2)
    )
    assert rollout is None and tokenizer.chat_template == CHATML_TEMPLATE
    assert trainer.processing_class.chat_template == CHATML_TOOL_TEMPLATE
    assert trainer.reward_weights.tolist() == [0.5, 2.0]  # progress, then the env's score
    scripted(trainer, [True, True])
    seen = _capture(monkeypatch, trainer)
    trainer.train()
    (batch,) = seen["batches"]
    logged = trainer.state.log_history[0]
    assert logged["tools/call_frequency"] == 2.0  # max_turns rounds of act calls per rollout
    assert logged["rl/turns_mean"] == 2.0 and logged["rl/overflow_rate"] == 0.0
    assert logged["rewards/progress/mean"] > 0  # two "inc" steps moved the toy environment
    for row in range(2):
        ids = batch["completion_ids"][row].tolist()
        mask = (batch["completion_mask"][row] * batch["tool_mask"][row]).tolist()
        trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
        untrained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
        # Three replies (the first and one after each of the max_turns results), each a call.
        assert trained.count("<tool_call>") == 3 and "You are at" not in trained
        assert "<|im_start|>tool\nYou are at" in untrained


@pytest.mark.train
def test_an_overflowing_tool_result_is_unscorable_not_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted: Any
) -> None:
    """A tool result past max_length: no reward (NaN, not 0), no loss, one warning; all rows: an error."""
    tok = tool_tokenizer(transformers.AutoTokenizer.from_pretrained(tiny_path("micro")))
    call_len = len(tok(CALL_TEXT, add_special_tokens=False)["input_ids"])
    cfg = _config(max_length=call_len + 5)  # the call fits; the call and its result do not
    trainer, _, _, _ = build_rl_trainer(MODEL, cfg, tmp_path, envs=ToyEnv, task_list=_toy_tasks(2))
    scripted(trainer, [True, False])  # row 0 calls the tool (and overflows), row 1 stops
    seen = _capture(monkeypatch, trainer)
    with pytest.warns(UserWarning, match=r"1 of 2 rollouts ran out of completion budget"):
        trainer.train()
    (batch,) = seen["batches"]
    (rewards,) = seen["rewards"]
    assert rewards[0].isnan().all()  # every reward function: None -> unscorable
    assert not rewards[1].isnan().any() and rewards[1].tolist() == [0.0, 0.0]
    assert (batch["completion_mask"][0] * batch["tool_mask"][0]).sum() == 0
    assert batch["advantages"][0].item() == 0.0
    assert trainer.state.log_history[0]["rl/overflow_rate"] == 0.5

    trainer, _, _, _ = build_rl_trainer(MODEL, cfg, tmp_path, envs=ToyEnv, task_list=_toy_tasks(2))
    scripted(trainer, [True, True])
    with pytest.raises(ValueError, match=r"max_length.*at least \d+"):
        trainer.train()


@pytest.mark.train
def test_train_rl_tool_mode_saves_the_models_own_template(tmp_path: Path) -> None:
    """``train_rl`` end to end in tool mode on a registered environment: output as in engine mode."""
    from palaestra.train import read_metadata, train_rl

    cfg = _config(env="maze-v1", n=1, max_length=24, progress_weight=0.0, score_weight=1.0)
    out = tmp_path / "rl"
    meta = train_rl(MODEL, cfg, out)
    assert read_metadata(out).kind == "rl" and meta.config["mode"] == "tool"
    saved = transformers.AutoTokenizer.from_pretrained(out)
    assert saved.chat_template == CHATML_TEMPLATE  # not the tool template
    logged = [h for h in meta.log_history if "reward" in h]
    assert (
        logged and "rewards/PalaestraTRLEnv/mean" in logged[0] and "rl/overflow_rate" in logged[0]
    )

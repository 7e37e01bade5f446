"""`train: false` turns stay out of the loss with real models' chat templates, or training refuses.

The tokenizers are trained here on a few lines (no downloads) and carry the real chat
templates: Qwen2.5, Qwen3, Llama-3, Llama-3.1, Llama-3.2 and Gemma-3 as TRL ships them for
identity comparison (byte-identical to the Hub's), Mistral-7B-Instruct-v0.1's pasted below.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from palaestra.model._templates import (  # noqa: E402
    TEMPLATES,
    masking_problem,
    rendering_problem,
    training_template_for,
)
from palaestra.train import SFTRunConfig, build_sft_trainer  # noqa: E402

MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)


def _trl(name: str) -> str:
    return files("trl").joinpath("chat_templates", f"{name}.jinja").read_text()


# name: (template, special tokens, bos, eos, pad)
_QWEN = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_LLAMA = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
FAMILIES: dict[str, tuple[str, list[str], str | None, str, str]] = {
    "qwen2.5": (_trl("qwen2_5"), _QWEN, None, "<|im_end|>", "<|endoftext|>"),
    "qwen3": (_trl("qwen3"), _QWEN, None, "<|im_end|>", "<|endoftext|>"),
    "llama3": (_trl("llama3"), _LLAMA, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"),
    "llama3.1": (_trl("llama3_1"), _LLAMA, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"),
    "llama3.2": (_trl("llama3_2"), _LLAMA, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"),
    "gemma3": (
        _trl("gemma3"),
        ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
        "<bos>",
        "<eos>",
        "<pad>",
    ),
    "mistral": (MISTRAL_V01, ["<unk>", "<s>", "</s>"], "<s>", "</s>", "<unk>"),
}

_LINES = [
    "You are an agent in a house. Reply with a thought and an action.",
    "Task: put a clean apple in the fridge. You are in the kitchen.",
    "Thought: I should look around first.\nAction: go to countertop 1",
    "Nothing happens. You see a fridge 1, a countertop 1 and a sink 1.",
    "Action: take apple 1 from countertop 1. Cutting Knowledge Date: December 2023",
]


def make_tokenizer(family: str) -> PreTrainedTokenizerFast:
    template, specials, bos, eos, pad = FAMILIES[family]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # pyright: ignore[reportAttributeAccessIssue]
    tk.decoder = decoders.ByteLevel()  # pyright: ignore[reportAttributeAccessIssue]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(_LINES, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=eos, pad_token=pad)
    tok.chat_template = template
    return tok


def _row(wrong: str, right: str, last: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are an agent in a house.", "train": None},
            {"role": "user", "content": "Task: put a clean apple in the fridge.", "train": None},
            {"role": "assistant", "content": wrong, "train": False},
            {"role": "user", "content": "Nothing happens.", "train": None},
            {"role": "assistant", "content": right, "train": True},
            {"role": "user", "content": "You see a fridge 1.", "train": None},
            {"role": "assistant", "content": last, "train": None},
        ]
    }


WRONG, RIGHT, LAST = "Action: xyzzy sink", "Action: go to countertop 1", "Action: take apple 1"


EOT = {
    "qwen2.5": "<|im_end|>",
    "qwen3": "<|im_end|>",
    "llama3": "<|eot_id|>",
    "llama3.1": "<|eot_id|>",
    "llama3.2": "<|eot_id|>",
    "gemma3": "<end_of_turn>",
    "mistral": "</s>",
}


def checkpoint(root: Path, family: str) -> Path:
    """A one-layer Llama with the family's tokenizer, saved as an hf/ checkpoint folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(family)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    out = root / family
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def labelled_runs(tok: Any, input_ids: list[int], labels: list[int]) -> list[str]:
    """The decoded stretches of tokens that carry loss."""
    runs: list[str] = []
    start = None
    for i, label in enumerate([*labels, -100]):
        if label != -100 and start is None:
            start = i
        elif label == -100 and start is not None:
            runs.append(tok.decode(input_ids[start:i]))
            start = None
    return runs


@pytest.mark.parametrize("family", ["qwen2.5", "llama3.1", "llama3", "gemma3"])
def test_sft_labels_skip_train_false_turns_with_real_templates(tmp_path: Path, family: str) -> None:
    base = checkpoint(tmp_path, family)
    data = datasets.Dataset.from_list([_row(WRONG, RIGHT, LAST)] * 2)
    cfg = SFTRunConfig(max_steps=1, batch_size=2, max_length=512, progress=False)
    trainer, tok, _ = build_sft_trainer(f"hf/{base}", data, cfg, tmp_path / "out")
    row = trainer.train_dataset[0]
    runs = labelled_runs(tok, row["input_ids"], row["labels"])
    # exactly the two trainable turns carry loss, each with its end-of-turn token
    assert len(runs) == 2 and RIGHT in runs[0] and LAST in runs[1], runs
    assert all(r.endswith(EOT[family]) for r in runs), runs
    assert WRONG in tok.decode(row["input_ids"])  # the masked mistake stays in the context
    assert tok.chat_template == FAMILIES[family][0]  # the output keeps the inference template


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_palaestra_training_templates_express_train_false(family: str) -> None:
    tok = make_tokenizer(family)
    original = FAMILIES[family][0]
    found = training_template_for(original)
    assert found is not None, family
    name, ours = found
    assert TEMPLATES[name] == ours
    assert masking_problem(tok, ours) is None
    # and render exactly what the model's own template renders, so training matches inference
    assert rendering_problem(tok, original, ours) is None


@pytest.mark.parametrize("family", ["qwen2.5", "llama3"])
def test_the_probe_catches_trls_training_templates(family: str) -> None:
    from trl.chat_template_utils import get_training_chat_template

    tok = make_tokenizer(family)
    trl_template = get_training_chat_template(tok)
    assert trl_template is not None
    problem = masking_problem(tok, trl_template)
    assert problem is not None and "train: false" in problem
    # without masked turns in the data, TRL's template is fine
    assert masking_problem(tok, trl_template, masked_turn=False) is None


def test_the_probe_catches_a_missing_end_of_turn_token() -> None:
    tok = make_tokenizer("qwen2.5")
    no_eot = TEMPLATES["qwen2.5"].replace(
        "{{ '<|im_end|>' }}{%- endgeneration -%}", "{%- endgeneration -%}{{ '<|im_end|>' }}"
    )
    assert no_eot != TEMPLATES["qwen2.5"]
    problem = masking_problem(tok, no_eot)
    assert problem is not None and "end-of-turn" in problem


def test_an_unknown_template_that_cannot_mask_is_refused(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    base = checkpoint(tmp_path, "qwen2.5")
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = (
        "{% for m in messages %}{{ '### ' + m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    )
    tok.save_pretrained(base)
    data = datasets.Dataset.from_list([_row(WRONG, RIGHT, LAST)] * 2)
    cfg = SFTRunConfig(max_steps=1, batch_size=2, max_length=512, progress=False)
    with pytest.raises(ValueError, match=r"train: false"):
        build_sft_trainer(f"hf/{base}", data, cfg, tmp_path / "out")

"""Chat templates with per-turn loss masks, as Jinja strings, and the probe that checks a template.

Every template here marks each trainable assistant turn with ``{% generation %}`` …
``{% endgeneration %}`` so that ``tokenizer.apply_chat_template(...,
return_assistant_tokens_mask=True)`` (and TRL's ``assistant_only_loss``) trains
on the assistant's words *and* its end-of-turn token — without that token in
the mask a model never learns to stop. An assistant message with
``train: false`` renders the same text outside the block: it stays in the
context but carries no loss (AgentRefine-style data keeps the agent's own
mistakes in the history this way).

- :data:`CHATML_TEMPLATE`: ChatML (``<|im_start|>role\\n…<|im_end|>``), used by
  the ``tiny`` model.
- :data:`GEMMA3_TEMPLATE`: Gemma 3's turn format, after TRL's
  ``gemma3_training.jinja``. Deviations: roles need not alternate (agent loops
  send consecutive observations), a ``tool`` turn renders as a ``user`` turn
  (Gemma has no tool role), and the newline after ``<end_of_turn>`` is outside
  the generation block, since the model stops at ``<end_of_turn>`` and never
  generates it.

Training templates for real models' families (:data:`TEMPLATES`, found by
:func:`training_template_for`): ``qwen2`` / ``qwen2.5`` (ChatML with the
family's default system prompt), ``qwen3`` (ChatML, and Qwen3's empty
``<think>`` block on a final assistant turn), ``llama3``, ``llama3.1`` /
``llama3.2`` (the system header with the knowledge and today's date),
``gemma3`` and ``mistral`` (v0.1's ``[INST]`` format; its template has no
system role, so a system prompt goes before the first user message). They are
written here, for conversations of plain text (no tool calls), and render
exactly what the model's own template renders (:func:`rendering_problem`
checks it on a probe) — so training sees the format inference uses. TRL's
training templates carry ``{% generation %}`` markers but ignore ``train``,
so a masked mistake gets loss under them.

:func:`masking_problem` renders a probe conversation with a ``train: false``
turn through a template and checks the token mask: exactly the trainable
turns carry loss, each with its end-of-turn token. Training uses it before
every SFT run (:mod:`palaestra.train._common`).

Tool-calling variants of the ChatML and Gemma 3 templates, for tool-mode RL,
live in :mod:`._tool_templates`; :func:`tool_template_for` finds them.

Pass a name (``"chatml"``, ``"gemma3"``, ``"qwen2.5"``, ..., ``"chatml-tools"``,
``"gemma3-tools"``) or a Jinja string as ``chat_template=`` to ``get_model("hf/...")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from palaestra.model._tool_templates import TOOL_TEMPLATE_NAMES, TOOL_TEMPLATES

# A message trains unless it says ``train: false``; a missing key or ``None`` trains.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' and message.get('train') is not false -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] }}{{ '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Gemma and Mistral have no system role: the system message opens the first user turn.
_SYSTEM_INTO_FIRST_USER = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
)

GEMMA3_TEMPLATE = (
    "{{ bos_token }}" + _SYSTEM_INTO_FIRST_USER + "{%- for message in loop_messages -%}"
    "{%- set prefix = first_user_prefix if loop.first else '' -%}"
    "{%- if message['role'] == 'assistant' and message.get('train') is not false -%}"
    "{{ '<start_of_turn>model\\n' + prefix }}"
    "{%- generation -%}{{ message['content'] | trim }}{{ '<end_of_turn>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else "
    "('user' if message['role'] == 'tool' else message['role']) -%}"
    "{{ '<start_of_turn>' + role + '\\n' + prefix + (message['content'] | trim) + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

_TRAINS = "message['role'] == 'assistant' and message.get('train') is not false"


def _chatml(default_system: str | None = None) -> str:
    """ChatML with an optional default system prompt (Qwen2 and Qwen2.5 add one when none is given)."""
    head = (
        "{%- if not messages or messages[0]['role'] != 'system' -%}"
        f"{{{{ '<|im_start|>system\\n{default_system}<|im_end|>\\n' }}}}"
        "{%- endif -%}"
        if default_system
        else ""
    )
    return head + CHATML_TEMPLATE


QWEN3_TEMPLATE = (
    # Qwen3's rule: an assistant turn after the last user query shows its reasoning
    # (an empty <think> block if it has none) when it is the last message.
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) -%}"
    "{%- for message in messages[::-1] -%}"
    "{%- set index = (messages|length - 1) - loop.index0 -%}"
    "{%- if ns.multi_step_tool and message['role'] == 'user' and message['content'] is string"
    " and not (message['content'].startswith('<tool_response>')"
    " and message['content'].endswith('</tool_response>')) -%}"
    "{%- set ns.multi_step_tool = false -%}{%- set ns.last_query_index = index -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set content = message['content'] -%}{%- set reasoning = '' -%}"
    "{%- if message.get('reasoning_content') is string -%}"
    "{%- set reasoning = message['reasoning_content'] -%}"
    "{%- elif '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) -%}"
    "{%- set content = '<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') -%}"
    "{%- endif -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if message.get('train') is not false -%}"
    "{%- generation -%}{{ content + '<|im_end|>' }}{%- endgeneration -%}"
    "{%- else -%}{{ content + '<|im_end|>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)


def _llama3(date_header: str | None = None) -> str:
    """Llama 3 (``date_header`` None) or 3.1+ (a system header with the knowledge cutoff and a date).

    ``date_header`` is the Jinja that sets ``date_string`` when the caller did not.
    """
    if date_header is None:
        head = "{{ bos_token }}"
    else:
        head = (
            "{{ bos_token }}"
            "{%- if not date_string is defined -%}" + date_header + "{%- endif -%}"
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set system_message = messages[0]['content'] | trim -%}"
            "{%- set messages = messages[1:] -%}"
            "{%- else -%}{%- set system_message = '' -%}{%- endif -%}"
            "{{ '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
            "{{ 'Cutting Knowledge Date: December 2023\\n' }}"
            "{{ 'Today Date: ' + date_string + '\\n\\n' }}"
            "{{ system_message + '<|eot_id|>' }}"
        )
    return head + (
        "{%- for message in messages -%}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
        f"{{%- if {_TRAINS} -%}}"
        "{%- generation -%}{{ message['content'] | trim + '<|eot_id|>' }}{%- endgeneration -%}"
        "{%- else -%}{{ message['content'] | trim + '<|eot_id|>' }}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
        "{%- endif -%}"
    )


MISTRAL_TEMPLATE = (
    "{{ bos_token }}" + _SYSTEM_INTO_FIRST_USER + "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- if message.get('train') is not false -%}"
    "{%- generation -%}{{ message['content'] + eos_token }}{%- endgeneration -%}"
    "{%- else -%}{{ message['content'] + eos_token }}{%- endif -%}"
    "{%- else -%}"
    "{{ '[INST] ' + (first_user_prefix if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

TEMPLATES: dict[str, str] = {
    "chatml": CHATML_TEMPLATE,
    "qwen2": _chatml("You are a helpful assistant."),
    "qwen2.5": _chatml("You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    "qwen3": QWEN3_TEMPLATE,
    "llama3": _llama3(),
    "llama3.1": _llama3("{%- set date_string = '26 Jul 2024' -%}"),
    "llama3.2": _llama3(
        "{%- if strftime_now is defined -%}{%- set date_string = strftime_now('%d %b %Y') -%}"
        "{%- else -%}{%- set date_string = '26 Jul 2024' -%}{%- endif -%}"
    ),
    "gemma3": GEMMA3_TEMPLATE,
    "mistral": MISTRAL_TEMPLATE,
}


def template_family(template: str | None) -> str | None:
    """The :data:`TEMPLATES` name for a model's own chat template, by its markers (None: unknown)."""
    if not template:
        return None
    if "<|im_start|>" in template:
        if "<think>" in template:
            return "qwen3"
        if "You are Qwen, created by Alibaba Cloud" in template:
            return "qwen2.5"
        if "You are a helpful assistant." in template:
            return "qwen2"
        return "chatml"
    if "<|start_header_id|>" in template:
        if "Cutting Knowledge Date" not in template:
            return "llama3"
        return "llama3.2" if "strftime_now" in template else "llama3.1"
    if "<start_of_turn>" in template:
        return "gemma3"
    if "[INST]" in template:
        return "mistral"
    return None


def training_template_for(template: str | None) -> tuple[str, str] | None:
    """Palaestra's training template for the family of ``template``: (name, Jinja), or None."""
    name = template_family(template)
    return None if name is None else (name, TEMPLATES[name])


def tool_template_for(template: str | None) -> tuple[str, str, dict[str, Any]] | None:
    """The tool-calling template for the family of ``template``: (family, Jinja, response parser).

    None for a family without one here (a Hub model's own template may call tools
    already; TRL checks it). The parser is a transformers ``response_template``.
    """
    name = template_family(template)
    if name is None or name not in TOOL_TEMPLATES:
        return None
    jinja, parser = TOOL_TEMPLATES[name]
    return name, jinja, parser


# ---- the probe ---------------------------------------------------------------------------

#: A conversation with one masked assistant turn between trainable ones (every message
#: carries ``train``, as rows of a ``datasets`` table do).
PROBE: tuple[dict[str, Any], ...] = (
    {"role": "system", "content": "You are a probe.", "train": None},
    {"role": "user", "content": "first question", "train": None},
    {"role": "assistant", "content": "masked reply", "train": False},
    {"role": "user", "content": "second question", "train": None},
    {"role": "assistant", "content": "trained reply", "train": True},
    {"role": "user", "content": "third question", "train": None},
    {"role": "assistant", "content": "final reply", "train": None},
)


def _special_texts(tokenizer: Any) -> set[str]:
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
    decoder: dict[int, Any] = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found |= {str(t.content) for t in decoder.values() if getattr(t, "special", False)}
    return {t for t in found if t}


def mask_spans(mask: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, end)`` of each stretch of 1s in an assistant-token mask (one per scored turn)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            spans.append((start, i))
            start = None
    return spans


def masking_problem(tokenizer: Any, template: str, *, masked_turn: bool = True) -> str | None:
    """Why ``template`` cannot train on exactly the trainable assistant turns, or None if it can.

    Renders :data:`PROBE` (with ``masked_turn=False``, every assistant turn trainable) with
    ``apply_chat_template(..., return_assistant_tokens_mask=True)`` and checks, on tokens:
    the ``train: false`` turn stays in the context without loss; each trainable turn carries
    loss, with its end-of-turn token; nothing else does.
    """
    probe = [dict(m) for m in PROBE]
    if not masked_turn:
        for m in probe:
            m["train"] = None
    try:
        enc = tokenizer.apply_chat_template(
            probe,
            chat_template=template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
    except Exception as e:  # a template error: whatever it raised, the template cannot be used
        return f"fails on a conversation with a system prompt: {e}"
    ids = [int(i) for i in enc["input_ids"]]
    mask = [int(m) for m in enc["assistant_masks"]]
    if not any(mask):
        return "marks no token for the loss (no {% generation %} markers)"
    runs = mask_spans(mask)
    texts = [str(tokenizer.decode(ids[a:b])) for a, b in runs]
    full = str(tokenizer.decode(ids))
    turns = [m for m in probe if m["role"] == "assistant"]
    trained = [m["content"] for m in turns if m["train"] is not False]
    for m in turns:
        if m["train"] is False:
            if m["content"] not in full:
                return "drops a train: false assistant turn from the context"
            if any(m["content"] in t for t in texts):
                return (
                    "gives loss to a train: false assistant turn (it ignores the per-message flag)"
                )
    for m in probe:
        if m["role"] != "assistant" and any(m["content"] in t for t in texts):
            return f"gives loss to a {m['role']} message"
    if len(texts) != len(trained) or any(c not in t for c, t in zip(trained, texts, strict=True)):
        return f"puts the loss on {texts!r}, not on the {len(trained)} trainable assistant turns"
    specials = _special_texts(tokenizer)
    for content, text in zip(trained, texts, strict=True):
        after = text[text.index(content) + len(content) :]
        if not any(s in after for s in specials):
            return (
                "leaves the end-of-turn token after an assistant turn without loss "
                f"(loss on {text!r}): the model would not learn to stop"
            )
    return None


def rendering_problem(tokenizer: Any, original: str, ours: str) -> str | None:
    """Where ``ours`` renders a plain conversation differently from ``original``, or None.

    Compared on :data:`PROBE` without ``train`` keys, whole and up to its last user message
    with the generation prompt. A template without a system role (Mistral's) is compared
    without the system message.
    """
    plain = [{"role": m["role"], "content": m["content"]} for m in PROBE]
    failure: Exception | None = None
    for conv in (plain, plain[1:]):
        cases = ((conv, False), (conv[:-1], True))
        try:
            want = [
                tokenizer.apply_chat_template(
                    c, chat_template=original, tokenize=False, add_generation_prompt=g
                )
                for c, g in cases
            ]
        except Exception as e:  # the model's template rejects the conversation
            failure = failure or e
            continue
        for (c, g), expected in zip(cases, want, strict=True):
            got = tokenizer.apply_chat_template(
                c, chat_template=ours, tokenize=False, add_generation_prompt=g
            )
            if got != expected:
                return f"renders {got!r} where the model's own template renders {expected!r}"
        return None
    return f"cannot be compared: the model's own template fails on a plain conversation: {failure}"


def resolve_template(template: str | None) -> str | None:
    """A template name from :data:`TEMPLATES` → its Jinja text; Jinja text and ``None`` pass through."""
    if template is None:
        return None
    if template in TEMPLATES:
        return TEMPLATES[template]
    if template in TOOL_TEMPLATE_NAMES:
        return TOOL_TEMPLATE_NAMES[template]
    if "{" not in template:
        names = [*TEMPLATES, *TOOL_TEMPLATE_NAMES]
        raise ValueError(
            f"chat_template {template!r} is neither a known name ({', '.join(names)}) "
            "nor a Jinja template"
        )
    return template

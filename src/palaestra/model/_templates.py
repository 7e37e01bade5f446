"""Chat templates shipped with the local backends, as Jinja strings.

Both templates mark each trainable assistant turn with ``{% generation %}`` …
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

Pass a name (``"chatml"``, ``"gemma3"``) or a Jinja string as ``chat_template=``
to ``get_model("hf/...")``.
"""

from __future__ import annotations

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

GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
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

TEMPLATES: dict[str, str] = {"chatml": CHATML_TEMPLATE, "gemma3": GEMMA3_TEMPLATE}


def resolve_template(template: str | None) -> str | None:
    """A template name from :data:`TEMPLATES` → its Jinja text; Jinja text and ``None`` pass through."""
    if template is None:
        return None
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{" not in template:
        raise ValueError(
            f"chat_template {template!r} is neither a known name ({', '.join(TEMPLATES)}) "
            "nor a Jinja template"
        )
    return template

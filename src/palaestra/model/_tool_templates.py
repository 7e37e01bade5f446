"""Tool-calling chat templates for Palaestra's own model families, and the parsers of their replies.

TRL's ``GRPOTrainer(environment_factory=...)`` (tool-mode RL) needs two things
from a tokenizer (trl 1.16, ``trl/chat_template_utils.py``):

- a chat template that renders ``tools``, an assistant message's
  ``tool_calls`` and ``tool`` messages — ``supports_tool_calling`` renders
  ``user -> assistant(tool_calls) -> tool`` and refuses the template unless
  the tool's name, argument key and value and the tool result all appear
  ("The provided chat template does not support tool calling") — and that
  is prefix-preserving (earlier turns render the same whatever follows);
- a ``response_template`` (transformers >= 5.13's response parser) that turns
  the generated tokens back into ``{"role": "assistant", "content": ...,
  "tool_calls": [...]}``. TRL's ``add_response_schema`` only knows the exact
  templates of a few Hub models (Qwen, Llama 3.1, ...), so for ours it is set
  here.

ChatML (the ``tiny`` model) and Gemma 3 templates render neither, so here are
tool-calling variants. On a conversation without tools they render exactly
what :data:`~palaestra.model._templates.CHATML_TEMPLATE` and
:data:`~palaestra.model._templates.GEMMA3_TEMPLATE` render (and Gemma 3's own
template, for alternating turns), ``{% generation %}`` markers included.

- :data:`CHATML_TOOL_TEMPLATE`: Qwen2.5's tool format on ChatML. ``tools`` are
  listed (one JSON schema per line inside ``<tools>``) in the system turn —
  the system message's text first, if any; a call is ``<tool_call>\\n{"name":
  ..., "arguments": {...}}\\n</tool_call>`` after the reply's text; a tool
  result is a ``tool`` turn (``<|im_start|>tool\\n...<|im_end|>``).
- :data:`GEMMA3_TOOL_TEMPLATE`: Gemma 3 has no tool role and no tool tokens;
  Google's Gemma 3 function-calling guide prompts for calls in a
  ````` ```tool_code ````` block and returns results in a ````` ```tool_output `````
  block, which is followed here, with a JSON call (``{"name": ...,
  "arguments": {...}}``) rather than Python syntax so that it parses without a
  Python parser. The tool list opens the first user turn (Gemma has no system
  role), before the system message's text; a tool result is a ``user`` turn.

The saved model keeps its own template: these are used for tool-mode RL only
(``palaestra.train``), or when asked for by name (``chat_template=
"chatml-tools"`` / ``"gemma3-tools"``). :func:`~palaestra.model._templates.tool_template_for`
finds the one for a model's template.
"""

from __future__ import annotations

from typing import Any

# ---- rendering pieces -------------------------------------------------------------------

# A call as JSON: {"name": ..., "arguments": {...}}; arguments given as a JSON string pass as is.
_CALL_JSON = (
    "{%- set call = tool_call.function if tool_call.function is defined else tool_call -%}"
    '{{ \'{"name": "\' + call.name + \'", "arguments": \' }}'
    "{%- if call.arguments is string -%}{{ call.arguments }}"
    "{%- else -%}{{ call.arguments | tojson }}{%- endif -%}"
    "{{ '}' }}"
)

_TOOLS_INTRO = (
    "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>"
)
_TOOLS_OUTRO = (
    "\\n</tools>\\n\\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
)

# ChatML with tools. The assistant body is one expression inside the generation block, so a
# reply with tool calls trains on the calls and its <|im_end|> like any other reply.
CHATML_TOOL_TEMPLATE = (
    "{%- if tools -%}"
    "{{ '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] + '\\n\\n' }}{%- endif -%}"
    "{{ '" + _TOOLS_INTRO + "' }}"
    "{%- for tool in tools -%}{{ '\\n' }}{{ tool | tojson }}{%- endfor -%}"
    "{{ '" + _TOOLS_OUTRO + "<|im_end|>\\n' }}"
    "{%- set loop_messages = messages[1:] if messages and messages[0]['role'] == 'system'"
    " else messages -%}"
    "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set body = namespace(text=message['content'] or '') -%}"
    "{%- for tool_call in message.get('tool_calls') or [] -%}"
    "{%- set call_text -%}" + _CALL_JSON + "{%- endset -%}"
    "{%- set sep = '\\n' if body.text else '' -%}"
    "{%- set body.text = body.text + sep + '<tool_call>\\n' + call_text + '\\n</tool_call>' -%}"
    "{%- endfor -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if message.get('train') is not false -%}"
    "{%- generation -%}{{ body.text }}{{ '<|im_end|>' }}{%- endgeneration -%}"
    "{%- else -%}{{ body.text + '<|im_end|>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_GEMMA_TOOLS_INTRO = (
    "You have access to functions. To call a function, reply with a tool_code block holding "
    'one JSON object: ```tool_code\\n{\\"name\\": <function-name>, \\"arguments\\": '
    "<args-json-object>}\\n```\\nEach result comes back in a tool_output block.\\n\\n"
    "Functions:"
)

GEMMA3_TOOL_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system_text = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system_text = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- set ns = namespace(tools_text='') -%}"
    "{%- if tools -%}"
    "{%- set ns.tools_text = '" + _GEMMA_TOOLS_INTRO + "' -%}"
    "{%- for tool in tools -%}"
    "{%- set ns.tools_text = ns.tools_text + '\\n' + (tool | tojson) -%}"
    "{%- endfor -%}"
    "{%- set ns.tools_text = ns.tools_text + '\\n\\n' -%}"
    "{%- endif -%}"
    "{%- set first_user_prefix = ns.tools_text + system_text -%}"
    "{%- for message in loop_messages -%}"
    "{%- set prefix = first_user_prefix if loop.first else '' -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set body = namespace(text=(message['content'] or '') | trim) -%}"
    "{%- for tool_call in message.get('tool_calls') or [] -%}"
    "{%- set call_text -%}" + _CALL_JSON + "{%- endset -%}"
    "{%- set sep = '\\n' if body.text else '' -%}"
    "{%- set body.text = body.text + sep + '```tool_code\\n' + call_text + '\\n```' -%}"
    "{%- endfor -%}"
    "{{ '<start_of_turn>model\\n' + prefix }}"
    "{%- if message.get('train') is not false -%}"
    "{%- generation -%}{{ body.text }}{{ '<end_of_turn>' }}{%- endgeneration -%}"
    "{%- else -%}{{ body.text + '<end_of_turn>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- elif message['role'] == 'tool' -%}"
    "{{ '<start_of_turn>user\\n' + prefix + '```tool_output\\n' + (message['content'] | trim)"
    " + '\\n```<end_of_turn>\\n' }}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + message['role'] + '\\n' + prefix + (message['content'] | trim)"
    " + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

# ---- parsing: transformers' response templates (see transformers' chat_parsing) ------------

#: Parses a ChatML tool-template reply (the same rules as TRL's Qwen3 template, without <think>).
CHATML_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}

#: Parses a Gemma 3 tool-template reply: ```tool_code blocks are calls, the rest is content.
GEMMA3_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<start_of_turn>model\n",
    "fields": {
        "tool_calls": {
            "open": "```tool_code\n",
            "close_pattern": r"\n?```\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"(?:<end_of_turn>|<eos>)\s*", "content": "text"},
    },
}

#: Family name (:func:`~palaestra.model._templates.template_family`) -> (tool template, parser).
TOOL_TEMPLATES: dict[str, tuple[str, dict[str, Any]]] = {
    "chatml": (CHATML_TOOL_TEMPLATE, CHATML_RESPONSE_TEMPLATE),
    "gemma3": (GEMMA3_TOOL_TEMPLATE, GEMMA3_RESPONSE_TEMPLATE),
}

#: Names ``resolve_template`` (``chat_template=``) accepts for the tool templates.
TOOL_TEMPLATE_NAMES: dict[str, str] = {
    "chatml-tools": CHATML_TOOL_TEMPLATE,
    "gemma3-tools": GEMMA3_TOOL_TEMPLATE,
}

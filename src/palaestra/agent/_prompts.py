"""Prompt templates (package data in ``prompts/``) and the history-truncation rule.

The system prompt follows AgentOccam's advice ("AgentOccam: A Simple Yet
Strong Baseline for LLM-Based Web Agents"): describe the observation and
action space compactly — the environment's one-paragraph description and its
action grammar, nothing else — and keep the reply format minimal.

Truncation rule (:func:`fit_history`): the system message and the first user
message (the task's first observation, which holds the instruction) are
always kept; then as many of the most recent (assistant, user) turn pairs as
fit in the token budget, newest first; a note "[k earlier turns omitted]" is
appended to the first user message so the model knows history was cut.

Every request alternates roles (an optional system message, then user,
assistant, user, ..., ending on user): chat templates that enforce it
(Llama-2's, Mistral's, Gemma's) reject anything else. An extra instruction
after an observation goes through :func:`then_ask`, which joins it to that
observation rather than adding a second user message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files

from palaestra.model import ChatMessage

TokenCounter = Callable[[str], int]


@cache
def template(name: str) -> str:
    """The text of ``prompts/<name>.txt``."""
    return files("palaestra.agent").joinpath("prompts", f"{name}.txt").read_text()


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (~4 characters per token), used when none is given."""
    return len(text) // 4 + 1


def fit_history(
    messages: list[ChatMessage], budget: int, count: TokenCounter = estimate_tokens
) -> list[ChatMessage]:
    """Apply the truncation rule in the module docstring. Returns a new list."""
    cost = [count(m.content) + 4 for m in messages]  # +4: role and template tokens
    if sum(cost) <= budget or len(messages) <= 2:
        return list(messages)
    head, rest, rest_cost = messages[:2], messages[2:], cost[2:]
    used = cost[0] + cost[1] + 16  # room for the omission note
    keep_from = len(rest)
    # walk back over (assistant, user) pairs; the tail may end with an assistant turn
    i = len(rest)
    while i > 0:
        j = i - 2 if i >= 2 else 0
        pair = sum(rest_cost[j:i])
        if used + pair > budget:
            break
        used += pair
        keep_from = j
        i = j
    kept = rest[keep_from:]
    if kept and kept[0].role != "assistant":  # keep user/assistant alternation
        kept = kept[1:]
        keep_from += 1
    omitted = keep_from // 2
    if omitted:
        note = (
            f"\n\n[{omitted} earlier turn{'s' if omitted != 1 else ''} omitted to fit the context]"
        )
        head = [head[0], head[1].model_copy(update={"content": head[1].content + note})]
    return head + kept


def then_ask(messages: list[ChatMessage], text: str) -> list[ChatMessage]:
    """``messages`` followed by the user message ``text``, keeping roles alternating: joined to
    the last message when that is a user one already (an observation). Returns a new list."""
    if messages and messages[-1].role == "user":
        last = messages[-1]
        return [*messages[:-1], last.model_copy(update={"content": f"{last.content}\n\n{text}"})]
    return [*messages, ChatMessage(role="user", content=text)]

"""Episodes to RL samples: the turns an agent played, one token sequence with a loss mask, groups.

GRPO/RLOO score one completion per prompt. A multi-turn episode becomes one:
the prompt is the first model call's conversation, the completion is every
later token of the episode's conversation rendered with the model's chat
template, and ``env_mask`` (TRL's name; 1 = the model wrote it) keeps the
environment's tokens — observations, format-error feedback, the template's
role headers — out of the loss, exactly as SFT's assistant-only loss does
(the same ``{% generation %}`` markers decide, see
:func:`palaestra.train._common.sft_chat_template`).

The agent may drop old turns from a prompt when it runs out of context
(``max_prompt_tokens``); then a later call's context is not the earlier
conversation plus the new turn, and training on one sequence would score
those turns in a context the model never saw. The sequence therefore stops
at the first such turn (``EpisodeTokens.kept_turns`` says how many turns are
trained). The reward still comes from the whole episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from palaestra.agent import Agent, AgentLoop, EpisodeEnd, ModelCall
from palaestra.env import Environment, Task
from palaestra.model import ChatMessage, Completion, GenerationConfig


@dataclass(frozen=True)
class Turn:
    """One model call of an episode: the conversation it was asked to continue, and the reply."""

    messages: list[ChatMessage]
    text: str


@dataclass
class EpisodeTokens:
    """One episode as GRPO's (prompt, completion) pair, with the loss mask over the completion."""

    prompt_ids: list[int]
    completion_ids: list[int]
    #: 1 where the model wrote the token (it carries loss), 0 for the environment's tokens.
    env_mask: list[int]
    #: Turns inside the sequence (see the module docstring); 0 for an episode with no model call.
    kept_turns: int = 0
    #: The episode did not fit ``max_length`` and was cut.
    truncated: bool = False


@dataclass
class TurnRecorder:
    """The turns of each episode an agent played, by ``(task_id, attempt)``."""

    turns: dict[tuple[str, int], list[Turn]] = field(
        default_factory=dict[tuple[str, int], list[Turn]]
    )

    def pop(self, task_id: str, attempt: int) -> list[Turn]:
        return self.turns.pop((task_id, attempt), [])


class RecordingAgent(Agent):
    """Wraps an agent: records every (conversation, reply) of its episodes into a :class:`TurnRecorder`.

    The wrapped loop is unchanged (same prompts, parsing, steps and outcomes), so
    RL episodes are the episodes ``rollout`` and ``eval`` play. Replies are asked
    with ``logprobs`` on, so backends that can return token ids do.
    """

    def __init__(self, inner: Agent, recorder: TurnRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = inner.name
        self.needs_model = inner.needs_model
        self.attempts_in_order = inner.attempts_in_order

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        turns: list[Turn] = []
        self.recorder.turns[(task.task_id, attempt)] = turns
        loop = self.inner.run(env, task, attempt)
        reply: Completion | None = None
        try:
            while True:
                try:
                    event = loop.send(reply)
                except StopIteration as stop:
                    end: EpisodeEnd = stop.value
                    return end
                reply = None
                if not isinstance(event, ModelCall):
                    yield event
                    continue
                config = (event.config or GenerationConfig()).model_copy(update={"logprobs": True})
                reply = yield ModelCall(list(event.messages), config, event.purpose)
                if isinstance(reply, Completion) and event.purpose == "act":
                    turns.append(Turn(list(event.messages), reply.text))
        finally:
            loop.close()  # the engine closes this loop at a limit: close the inner one too


def consistent_turns(turns: Sequence[Turn]) -> int:
    """How many leading turns form one conversation (each call extends the previous one + its reply)."""
    if not turns:
        return 0
    conv = [*turns[0].messages, ChatMessage(role="assistant", content=turns[0].text)]
    kept = 1
    for turn in turns[1:]:
        if turn.messages[: len(conv)] != conv:
            break
        conv = [*turn.messages, ChatMessage(role="assistant", content=turn.text)]
        kept += 1
    return kept


def _as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in messages]


def _ids(value: Any) -> list[int]:
    return [int(x) for x in value]


def episode_tokens(
    tokenizer: Any,
    turns: Sequence[Turn],
    *,
    loss_template: str,
    prompt_template: str | None = None,
    max_length: int,
) -> EpisodeTokens:
    """The token sequence and loss mask of an episode's turns (see the module docstring).

    ``prompt_template`` is the template the model generated with (default: the
    tokenizer's); ``loss_template`` is the same template with ``{% generation %}``
    markers around the assistant turns, which render identically. An episode
    without a model call (its environment failed on reset) gives a one-token
    pair that carries no loss.
    """
    kept = consistent_turns(turns)
    if kept == 0:
        eos = int(tokenizer.eos_token_id)
        return EpisodeTokens([eos], [eos], [0])
    last = turns[kept - 1]
    conv = [*last.messages, ChatMessage(role="assistant", content=last.text)]
    prompt_ids = _ids(
        tokenizer.apply_chat_template(
            _as_dicts(turns[0].messages),
            chat_template=prompt_template or tokenizer.chat_template,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
    )
    full = tokenizer.apply_chat_template(
        _as_dicts(conv),
        chat_template=loss_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids = _ids(full["input_ids"])
    mask = _ids(full["assistant_masks"])
    p = len(prompt_ids)
    if ids[:p] != prompt_ids:
        raise ValueError(
            "the chat template does not render a conversation as its first prompt followed by the "
            "later turns (tokens differ at the boundary); RL on whole episodes needs a template "
            "that only appends"
        )
    completion, comp_mask = ids[p:], mask[p:]
    # Tokens after the last reply (the final observation, if rendered) carry no loss: drop them.
    end = max((i + 1 for i, m in enumerate(comp_mask) if m), default=0)
    completion, comp_mask = completion[:end], comp_mask[:end]
    budget = max(max_length - p, 1)
    truncated = len(completion) > budget
    if truncated:
        completion, comp_mask = completion[:budget], comp_mask[:budget]
    if not completion:
        eos = int(tokenizer.eos_token_id)
        completion, comp_mask = [eos], [0]
    return EpisodeTokens(prompt_ids, completion, comp_mask, kept, truncated)


def task_groups(prompts: Sequence[str], num_generations: int) -> list[str]:
    """The task key of each group of a GRPO batch: ``num_generations`` equal prompts in a row.

    TRL's sampler repeats each prompt ``num_generations`` times consecutively;
    anything else means the batch is not made of whole groups, and group
    baselines would mix tasks.
    """
    if len(prompts) % num_generations:
        raise ValueError(
            f"a batch of {len(prompts)} prompts is not whole groups of {num_generations}"
        )
    keys: list[str] = []
    for start in range(0, len(prompts), num_generations):
        group = prompts[start : start + num_generations]
        if any(p != group[0] for p in group):
            raise ValueError(f"group at row {start} mixes prompts: {sorted(set(group))}")
        keys.append(group[0])
    return keys

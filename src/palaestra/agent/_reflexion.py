"""Reflexion (Shinn et al., "Reflexion: Language Agents with Verbal Reinforcement Learning", 2023).

A ReAct actor; when an attempt fails (``failure`` or ``limit``), the model is
asked to reflect on the trajectory (``prompts/reflexion_reflect.txt``) and
the reflection is kept in an episodic memory keyed by task id. The next
attempt at the same task sees the last ``max_reflections`` reflections in its
system prompt. The rollout engine runs the attempts of one task in order for
this agent (``attempts_in_order``), so attempt k+1 sees attempt k's lesson.

Deviation from the paper: the evaluator is the environment's own success
signal (the paper also uses LLM or heuristic evaluators), and memory lives
in the agent object; a resumed run re-primes it from the stored episodes'
``metadata["reflection"]`` with :meth:`ReflexionAgent.remember`.
"""

from __future__ import annotations

from collections.abc import Iterable

from palaestra.agent._core import AgentLoop, ModelCall, for_attempt
from palaestra.agent._prompts import template, then_ask
from palaestra.agent._react import ReactAgent
from palaestra.env import Environment, Task
from palaestra.model import Completion, GenerationConfig
from palaestra.trajectory import Episode


class ReflexionAgent(ReactAgent):
    name = "reflexion"
    attempts_in_order = True

    def __init__(self, *, max_reflections: int = 3, **kwargs: object) -> None:
        super().__init__(**kwargs)  # pyright: ignore[reportArgumentType]
        self.max_reflections = max_reflections
        self.memory: dict[str, list[str]] = {}
        self.reflect_config = GenerationConfig(max_new_tokens=160)

    def extra_system(self, task: Task) -> str:
        notes = self.memory.get(task.task_id, [])[-self.max_reflections :]
        if not notes:
            return ""
        lines = "\n".join(f"- {n}" for n in notes)
        return template("reflexion_memory").format(reflections=lines)

    def remember(self, episodes: Iterable[Episode]) -> None:
        """Re-prime the memory from stored episodes (for resumed runs)."""
        for ep in sorted(episodes, key=lambda e: e.attempt):
            note = ep.metadata.get("reflection")
            if isinstance(note, str) and note:
                self.memory.setdefault(ep.task.task_id, []).append(note)

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        end = yield from super().run(env, task, attempt)
        if end.outcome in ("failure", "limit"):
            # The conversation ends on an observation: the request is joined to it.
            prompt = then_ask(end.messages, template("reflexion_reflect"))
            config = for_attempt(self.reflect_config, attempt)
            reply = yield ModelCall(prompt, config, purpose="reflect")
            if not isinstance(reply, Completion):
                raise TypeError("the driver must send a Completion in reply to a ModelCall")
            note = " ".join(reply.text.split())
            if note:
                self.memory.setdefault(task.task_id, []).append(note)
                end.metadata["reflection"] = note
        return end

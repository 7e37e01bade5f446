"""Agent loops: generators of typed steps (react, reflexion, codeact, expert, random).

``get_agent("react", max_steps=20)`` builds one by name.
"""

from typing import Any

from palaestra.agent._baseline_agents import ExpertAgent, RandomAgent
from palaestra.agent._codeact import (
    CodeActAgent,
    CodeActExpertAgent,
    CodeFunction,
    derive_functions,
    expert_code_reply,
)
from palaestra.agent._core import (
    Agent,
    AgentLoop,
    EpisodeEnd,
    ModelCall,
    attempt_seed,
    for_attempt,
    run_episode,
)
from palaestra.agent._prompts import estimate_tokens, fit_history, template
from palaestra.agent._react import EpisodeContext, Parsed, ReactAgent, parse_react
from palaestra.agent._reflexion import ReflexionAgent
from palaestra.agent.search import BestFirstSearchAgent, MCTSAgent, SearchConfig

AGENTS: dict[str, type[Agent]] = {
    "react": ReactAgent,
    "reflexion": ReflexionAgent,
    "expert": ExpertAgent,
    "random": RandomAgent,
    "codeact": CodeActAgent,
    "codeact-expert": CodeActExpertAgent,
    "search:best-first": BestFirstSearchAgent,
    "search:mcts": MCTSAgent,
}


def get_agent(name: str, **kwargs: Any) -> Agent:
    """Build an agent by name: react, reflexion, codeact, expert, codeact-expert or random."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")
    return AGENTS[name](**kwargs)


__all__ = [
    "AGENTS",
    "Agent",
    "AgentLoop",
    "BestFirstSearchAgent",
    "CodeActAgent",
    "CodeActExpertAgent",
    "CodeFunction",
    "EpisodeContext",
    "EpisodeEnd",
    "ExpertAgent",
    "MCTSAgent",
    "ModelCall",
    "Parsed",
    "RandomAgent",
    "ReactAgent",
    "ReflexionAgent",
    "SearchConfig",
    "attempt_seed",
    "derive_functions",
    "estimate_tokens",
    "expert_code_reply",
    "fit_history",
    "for_attempt",
    "get_agent",
    "parse_react",
    "run_episode",
    "template",
]

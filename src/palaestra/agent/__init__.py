"""Agent loops: generators of typed steps (react, reflexion, codeact, expert, random, search).

``get_agent("react", max_steps=20)`` builds one by its registry id; third-party
agents register through the ``palaestra.agents`` entry-point group (see
``docs/agents.md``). :class:`ChatAgent` is the turn loop ReAct, Reflexion and
CodeAct share; subclass it (or :class:`ReactAgent`) for a new reply format.
"""

from palaestra.agent._attack_agents import ObedientAgent, find_instruction
from palaestra.agent._baseline_agents import (
    CodeActExpertAgent,
    ExpertAgent,
    RandomAgent,
    expert_code_reply,
)
from palaestra.agent._chat import ChatAgent, ChatEpisode, EpisodeContext, TurnLoop
from palaestra.agent._codeact import CodeActAgent, CodeActEpisode, parse_codeact
from palaestra.agent._codeact_functions import CodeFunction, derive_functions
from palaestra.agent._core import (
    Agent,
    AgentLoop,
    EpisodeEnd,
    ModelCall,
    attempt_seed,
    for_attempt,
    run_episode,
)
from palaestra.agent._memory import (
    DEFAULT_TRIGGER,
    MemoryEntry,
    TrajectoryMemory,
    format_examples,
    poison_memory,
)
from palaestra.agent._prompts import estimate_tokens, fit_history, template
from palaestra.agent._react import (
    PROMPT_STYLES,
    Parsed,
    PromptStyle,
    ReactAgent,
    format_error_feedback,
    parse_react,
)
from palaestra.agent._reflexion import ReflexionAgent
from palaestra.agent._registry import (
    AGENTS,
    ENTRY_POINT_GROUP,
    AgentFactory,
    AgentSpec,
    agent_registry,
    agent_spec,
    get_agent,
    register_agent,
    unknown_agent_message,
)
from palaestra.agent._safety_agents import AlwaysRefuseAgent, always_refuse_policy, refusal_action
from palaestra.agent.search import BestFirstSearchAgent, MCTSAgent, SearchConfig

__all__ = [
    "AGENTS",
    "DEFAULT_TRIGGER",
    "ENTRY_POINT_GROUP",
    "PROMPT_STYLES",
    "Agent",
    "AgentFactory",
    "AgentLoop",
    "AgentSpec",
    "AlwaysRefuseAgent",
    "BestFirstSearchAgent",
    "ChatAgent",
    "ChatEpisode",
    "CodeActAgent",
    "CodeActEpisode",
    "CodeActExpertAgent",
    "CodeFunction",
    "EpisodeContext",
    "EpisodeEnd",
    "ExpertAgent",
    "MCTSAgent",
    "MemoryEntry",
    "ModelCall",
    "ObedientAgent",
    "Parsed",
    "PromptStyle",
    "RandomAgent",
    "ReactAgent",
    "ReflexionAgent",
    "SearchConfig",
    "TrajectoryMemory",
    "TurnLoop",
    "agent_registry",
    "agent_spec",
    "always_refuse_policy",
    "attempt_seed",
    "derive_functions",
    "estimate_tokens",
    "expert_code_reply",
    "find_instruction",
    "fit_history",
    "for_attempt",
    "format_error_feedback",
    "format_examples",
    "get_agent",
    "parse_codeact",
    "parse_react",
    "poison_memory",
    "refusal_action",
    "register_agent",
    "run_episode",
    "template",
    "unknown_agent_message",
]

"""AgentGym environment servers (Xi et al., 2024, "AgentGym"; WooooDyy/AgentGym) as Palaestra ids.

Users who run AgentGym's WebShop, ALFWorld, SciWorld, BabyAI or TextCraft
servers (each in its own environment, as AgentGym ships them) evaluate and
train on them through ``make("agentgym/webshop-v1", base_url=...)`` or the
``PALAESTRA_AGENTGYM_<NAME>_URL`` variable. The client speaks HTTP with the
standard library only, so no extra is needed; the class lives in ``_env``.
"""

from __future__ import annotations

from palaestra.env._registry import register

#: Registered ids -> class in ``_env`` and step limit (AgentGym's evaluation round budgets).
AGENTGYM_IDS: dict[str, tuple[str, int]] = {
    "agentgym/webshop-v1": ("WebShopEnv", 10),
    "agentgym/alfworld-v1": ("ALFWorldEnv", 30),
    "agentgym/sciworld-v1": ("SciWorldEnv", 30),
    "agentgym/babyai-v1": ("BabyAIEnv", 20),
    "agentgym/textcraft-v1": ("TextCraftEnv", 20),
}


def register_envs() -> None:
    for env_id, (cls, limit) in AGENTGYM_IDS.items():
        register(
            env_id,
            f"palaestra.env.external.agentgym._env:{cls}",
            max_episode_steps=limit,
            source="palaestra (AgentGym env server)",
        )

"""The environments that ship with Palaestra: a plain table the registry reads.

Adding a built-in family is one :class:`EnvSpec` row in :data:`BUILTIN_SPECS`
(the registry registers every row on first use, then the external adapters
and the plugins). This module imports nothing but the spec record, so the
registry depends on it and not the other way round.
"""

from __future__ import annotations

from palaestra.env._spec import EnvSpec

#: The procedural families whose text builds the ``tiny`` tokenizer (``palaestra.data``'s
#: tiny corpus). An explicit list, not the table's ids: a new family changes the tiny
#: model (its cache key) only when it is added here on purpose.
BUILTIN_FAMILIES = ("shop-v1", "house-v1", "toolqa-v1", "maze-v1", "code-v1")

# No built-in family has a client-settable constructor argument (EnvSpec.client_kwargs):
# code-v1's choose its sandbox and timeouts, which only a server's operator may set.
BUILTIN_SPECS: tuple[EnvSpec, ...] = (
    EnvSpec("shop-v1", "palaestra.env.families.shop:ShopEnv", max_episode_steps=30),
    EnvSpec("house-v1", "palaestra.env.families.house:HouseEnv", max_episode_steps=50),
    EnvSpec("toolqa-v1", "palaestra.env.families.toolqa:ToolQAEnv", max_episode_steps=20),
    EnvSpec("maze-v1", "palaestra.env.families.maze:MazeEnv", max_episode_steps=100),
    EnvSpec("code-v1", "palaestra.env.families.code:CodeEnv", max_episode_steps=15),
    EnvSpec("safe-v1", "palaestra.env.families.safe:SafeEnv", max_episode_steps=20),
    EnvSpec("refusal-v1", "palaestra.env.families.refusal:RefusalEnv", max_episode_steps=5),
)

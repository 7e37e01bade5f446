"""Registrations of the environment families that ship with Palaestra."""

from __future__ import annotations

from palaestra.env._registry import register

#: The procedural families that ship with Palaestra (their text builds the ``tiny`` tokenizer).
BUILTIN_FAMILIES = ("shop-v1", "house-v1", "toolqa-v1", "maze-v1", "code-v1")


def register_builtin() -> None:
    # No built-in family has a client-settable constructor argument (EnvSpec.client_kwargs):
    # code-v1's choose its sandbox and timeouts, which only a server's operator may set.
    register("shop-v1", "palaestra.env.families.shop:ShopEnv", max_episode_steps=30)
    register("house-v1", "palaestra.env.families.house:HouseEnv", max_episode_steps=50)
    register("toolqa-v1", "palaestra.env.families.toolqa:ToolQAEnv", max_episode_steps=20)
    register("maze-v1", "palaestra.env.families.maze:MazeEnv", max_episode_steps=100)
    register("code-v1", "palaestra.env.families.code:CodeEnv", max_episode_steps=15)

    from palaestra.env.external import register_external

    register_external()

"""Palaestra: build LLM agents, improve them from their own experience, and measure them."""

from palaestra.env import EnvError, Environment, Observation, Task, check_env, make, register, tasks

__version__ = "0.1.0"

__all__ = [
    "EnvError",
    "Environment",
    "Observation",
    "Task",
    "__version__",
    "check_env",
    "make",
    "register",
    "tasks",
]

"""A stand-in for AgentGym's env servers, for testing ``palaestra.env.external.agentgym``.

It follows the routes and payloads of AgentGym's servers (WooooDyy/AgentGym,
``agentenv-{webshop,alfworld,sciworld,babyai,textcraft}/*/server.py`` and
``environment.py``/``env_wrapper.py``) field for field — including their
quirks: WebShop's bare-int ids, ``env_idx`` field and ``[observation, null]``
reset answer; BabyAI's action list inside the observation text; errors as
HTTP 200 ``{"error": ...}``; TextCraft's required ``/create`` body — but the
game behind every dialect is our own ``house-v1`` family (ALFWorld-like),
task index ``i`` being ``house-v1`` train/easy seed ``i``. Each dialect is
served under its own path prefix (``/webshop``, ``/babyai``, ...), so one
process stands in for all five servers.

Run: ``python _agentgym_server.py --port 8123``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from palaestra.env import Environment, Observation, make

#: Task indices the stand-in serves (AgentGym servers fail past their data set).
N_TASKS = 1000
#: Action spellings of other simulators, mapped onto house-v1's.
ALIASES = {"sciworld": {"look around": "look"}}


@dataclass
class Instance:
    env: Environment = field(default_factory=lambda: make("house-v1", max_episode_steps=0))
    last: Observation | None = None
    done: bool = False
    score: float = 0.0  # BabyAI's cumulative "score" field

    def text(self) -> str:
        return self.last.text if self.last else ""

    def reset(self, idx: int) -> str:
        if not 0 <= idx < N_TASKS:
            raise ValueError(f"data_idx {idx} out of range [0, {N_TASKS})")
        task = self.env.make_task(idx, "train", "easy")
        self.last = self.env.reset(task)
        self.done = False
        self.score = 0.0
        return self.last.text

    def step(self, action: str) -> Observation | None:
        """Apply a house-v1 action; ``None`` (and no change) if house-v1 rejects it."""
        before = self.env.snapshot()
        obs = self.env.step(action)
        if obs.info.get("invalid"):
            self.env.restore(before)  # AgentGym simulators leave the state as it was
            return None
        self.last = obs
        self.done = obs.terminated
        return obs

    def success(self) -> bool:
        return bool(self.last and self.last.info.get("success"))


class Store:
    def __init__(self, first_id: int = 0, stride: int = 1) -> None:
        self.envs: dict[int, Instance] = {}
        self._ids = itertools.count(first_id, stride)

    def create(self) -> int:
        i = next(self._ids)
        self.envs[i] = Instance()
        return i

    def get(self, i: int, *, reset: bool = False) -> Instance:
        if i not in self.envs:
            raise ValueError(f"The id {i} is not valid.")
        inst = self.envs[i]
        if not reset and inst.done:
            raise ValueError(f"The task with environment {i} has finished.")
        return inst


def _errors_as_payload(fn: Any) -> Any:
    """AgentGym's servers (all but WebShop) answer exceptions as HTTP 200 {"error": ...}."""

    @functools.wraps(fn)  # FastAPI reads the signature through __wrapped__
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            return {"error": str(e)}

    return wrapped


# ---- WebShop (agentenv_webshop/server.py, model.py) ------------------------------------


class WebshopStep(BaseModel):
    env_idx: int
    action: str


class WebshopReset(BaseModel):
    env_idx: int
    session_id: int | None = None


class WebshopClose(BaseModel):
    env_idx: int


def webshop_router() -> APIRouter:
    r = APIRouter(prefix="/webshop")
    store = Store(first_id=48_000_000, stride=7919)  # WebShop's ids are random ints

    def clickables(inst: Instance) -> list[str]:
        return ["search", *inst.env.available_actions()]

    @r.get("/")
    def ok() -> str:
        return "ok"

    @r.post("/create")
    def create() -> int:
        return store.create()

    @r.post("/step")
    def step(q: WebshopStep) -> dict[str, Any]:
        inst = store.envs[q.env_idx]  # an unknown id raises: HTTP 500, as in WebShop
        reward, done = 0.0, False
        action = q.action
        name, _, arg = action.partition("[")
        arg = arg.removesuffix("]").lower() if action.endswith("]") else ""
        if name == "search" and arg:
            inst.step("look")  # the stand-in's "search page" is the room description
        elif name == "click" and arg in clickables(inst) and arg != "search":
            obs = inst.step(arg)
            if obs is not None and obs.terminated:
                reward, done = obs.reward, True
        # anything else: "If action not valid, perform nothing."
        return {"state": inst.text(), "reward": reward, "done": done, "info": None}

    @r.get("/available_actions")
    def available_actions(env_idx: int) -> dict[str, Any]:
        inst = store.envs[env_idx]
        return {"has_search_bar": True, "clickables": clickables(inst)}

    @r.get("/instruction_text")
    def instruction_text(env_idx: int) -> str:
        task = store.envs[env_idx].env.task
        return f"Instruction: {task.instruction if task else ''}"

    @r.get("/observation")
    def observation(env_idx: int) -> str:
        return store.envs[env_idx].text()

    @r.post("/reset")
    def reset(q: WebshopReset) -> list[Any]:
        return [store.envs[q.env_idx].reset(q.session_id or 0), None]

    @r.post("/close")
    def close(q: WebshopClose) -> dict[str, bool]:
        return {"closed": store.envs.pop(q.env_idx, None) is not None}

    return r


# ---- BabyAI (agentenv_babyai/server.py, environment.py BabyAIEnv) ----------------------


class IdAction(BaseModel):
    id: int
    action: str


class IdDataIdx(BaseModel):
    id: int
    data_idx: int


def _babyai_actions(inst: Instance) -> str:
    listed = inst.env.available_actions()
    return "\nAvailable actions: [" + ", ".join(f'"{a}"' for a in listed) + "]" if listed else ""


def babyai_router() -> APIRouter:
    r = APIRouter(prefix="/babyai")
    store = Store()

    @r.get("/")
    def hello() -> str:
        return "This is environment BabyAI."

    @r.post("/create")
    def create() -> dict[str, int]:
        return {"id": store.create()}

    @r.post("/step")
    @_errors_as_payload
    def step(body: IdAction) -> Any:
        inst = store.get(body.id)
        action = body.action.lower().strip()
        if action == "check available actions":
            listed = ", ".join(inst.env.available_actions())
            return {
                "observation": f"You can take the following actions: {listed}",
                "reward": inst.env.progress(),
                "score": inst.score,
                "done": False,
            }
        obs = inst.step(action) if action in inst.env.available_actions() else None
        if obs is None:
            text = "The action is not recognized. Please check valid actions."
        else:
            text = obs.text + ("\n The task is completed." if inst.success() else "")
        reward = 1.0 if inst.success() else inst.env.progress()
        inst.score += reward
        return {
            "observation": text + _babyai_actions(inst),
            "reward": reward,
            "score": inst.score,
            "done": inst.success(),  # BabyAI: done only on success
        }

    @r.post("/reset")
    @_errors_as_payload
    def reset(body: IdDataIdx) -> Any:
        inst = store.get(body.id, reset=True)
        text = inst.reset(body.data_idx)
        task = inst.env.task
        goal = task.instruction if task else ""
        return {
            "observation": f"Your goal: {goal}\n{text}{_babyai_actions(inst)}",
            "reward": 0.0,
            "score": 0.0,
            "deleted": False,
            "done": False,
        }

    return r


# ---- ALFWorld (agentenv_alfworld/server.py, env_wrapper.py) -----------------------------


class AlfworldReset(BaseModel):
    id: int
    game: int
    world_type: str


def alfworld_router() -> APIRouter:
    r = APIRouter(prefix="/alfworld")
    store = Store()

    @r.get("/")
    def hello() -> str:
        return "This is environment AlfWorld."

    @r.post("/create")
    def create() -> dict[str, int]:
        return {"id": store.create()}

    @r.post("/step")
    @_errors_as_payload
    def step(body: IdAction) -> Any:
        inst = store.get(body.id)
        obs = inst.step(body.action)
        return {
            "observation": "Nothing happens." if obs is None else obs.text,
            "reward": 1.0 if inst.success() else 0.0,
            "available_actions": inst.env.available_actions(),
            "done": inst.done,
        }

    @r.post("/reset")
    @_errors_as_payload
    def reset(body: AlfworldReset) -> Any:
        if body.world_type not in ("Text", "Embody", "Hybrid"):
            return {"error": 'world_type must be one of "Text", "Embody" and "Hybrid"'}
        inst = store.get(body.id, reset=True)
        text = inst.reset(body.game)
        return {
            "id": body.id,
            "observation": text,
            "available_actions": inst.env.available_actions(),
            "task_type": "house/easy",
        }

    @r.get("/available_actions")
    @_errors_as_payload
    def available_actions(id: int) -> Any:
        return store.get(id).env.available_actions()

    @r.get("/observation")
    @_errors_as_payload
    def observation(id: int) -> Any:
        return store.get(id).text()

    return r


# ---- SciWorld (agentenv_sciworld/server.py, environment.py) -----------------------------


def sciworld_router() -> APIRouter:
    r = APIRouter(prefix="/sciworld")
    store = Store()

    def score(inst: Instance) -> float:
        return round(100 * inst.env.progress())

    @r.post("/create")
    def create() -> dict[str, int]:
        return {"id": store.create()}

    @r.post("/step")
    @_errors_as_payload
    def step(body: IdAction) -> Any:
        inst = store.get(body.id)
        before = score(inst)
        if body.action == "task":
            task = inst.env.task
            text = f"Your task is to: {task.instruction if task else ''}"
        else:
            action = ALIASES["sciworld"].get(body.action, body.action)
            obs = inst.step(action)
            text = "No known action matches that input." if obs is None else obs.text
        return {
            "observation": text,
            "reward": score(inst) - before,
            "score": score(inst),
            "done": inst.done,
        }

    @r.post("/reset")
    @_errors_as_payload
    def reset(body: IdDataIdx) -> Any:
        inst = store.get(body.id, reset=True)
        text = inst.reset(body.data_idx)
        task = inst.env.task
        return {
            "task_name": "house",
            "var_num": body.data_idx,
            "task_description": f"Your task is to: {task.instruction if task else ''}",
            "observation": text,
            "reward": 0,
            "score": 0,
            "deleted": False,
            "done": False,
        }

    @r.get("/observation")
    @_errors_as_payload
    def observation(id: int) -> Any:
        return store.get(id).text()

    return r


# ---- TextCraft (agentenv_textcraft/server.py, env_wrapper.py, model.py) ----------------


class TextcraftCreate(BaseModel):
    commands: str | None = None
    goal: str | None = None


class TextcraftReset(BaseModel):
    id: int
    data_idx: int | None = 0


def textcraft_router() -> APIRouter:
    r = APIRouter(prefix="/textcraft")
    store = Store()

    @r.post("/create")
    @_errors_as_payload
    def create(body: TextcraftCreate) -> Any:  # the body is required, its fields nullable
        i = store.create()
        text = store.envs[i].reset(i)  # TextCraft's /create resets to data_idx = id
        return {"id": i, "observation": text, "done": False, "reward": 0}

    @r.post("/step")
    @_errors_as_payload
    def step(body: IdAction) -> Any:
        inst = store.get(body.id, reset=True)  # TextCraft does not refuse steps after done
        obs = inst.step(body.action)
        text = f"Could not execute {body.action}" if obs is None else obs.text
        return {"observation": text, "reward": 1 if inst.success() else 0, "done": inst.done}

    @r.post("/reset")
    @_errors_as_payload
    def reset(body: TextcraftReset) -> Any:
        inst = store.get(body.id, reset=True)
        text = inst.reset(body.data_idx or 0)
        return {"id": body.id, "observation": text, "done": False, "reward": 0}

    @r.post("/close")
    def close(body: dict[str, Any]) -> dict[str, bool]:
        return {"closed": store.envs.pop(int(body.get("id", -1)), None) is not None}

    return r


ROUTERS = {
    "webshop": webshop_router,
    "babyai": babyai_router,
    "alfworld": alfworld_router,
    "sciworld": sciworld_router,
    "textcraft": textcraft_router,
}


def create_app() -> FastAPI:
    app = FastAPI(title="AgentGym stand-in (house-v1 behind AgentGym's protocols)")
    for make_router in ROUTERS.values():
        app.include_router(make_router())

    @app.get("/")
    def root() -> str:
        return "AgentGym stand-in"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

"""Environment throughput: raw family, through ``make`` (wrappers), and through the HTTP server.

For every registered environment (plus ``toy-v1``, the ToyEnv), the same
driver — a seeded uniform-random choice among ``available_actions()``,
``reset`` to the next task when an episode ends — runs

(a) on the unwrapped family class,
(b) on ``make(id)`` with its registered wrappers (StepLimit), reporting the
    overhead against (a),
(c) through ``palaestra serve-env`` on loopback: the server is a separate
    process, and N client processes (default 8) each drive a
    ``RemoteEnvironment`` at the same time; we report their aggregate steps/s.

(a) and (b) alternate over several short rounds and keep each one's best
round, which cancels most of the noise of a shared machine. Results go to a
table on stdout and to ``bench/results/env_throughput.json``.

Targets: wrapper overhead < 10 %; server > 1,000 steps/s with 8 clients.

    python bench/env_throughput.py            # about 1.5 minutes
    python bench/env_throughput.py --quick    # about 30 s
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from palaestra.env import Environment, Task, make, register, registry, spec

TOY = "toy-v1=palaestra.env._toy:ToyEnv"
RESULTS = Path(__file__).parent / "results" / "env_throughput.json"
console = Console()


def _ensure_toy() -> None:
    if "toy-v1" not in registry():
        register("toy-v1", "palaestra.env._toy:ToyEnv")


def _tasks(env: Environment, n: int = 30) -> list[Task]:
    levels = ("easy", "medium", "hard")
    return [env.make_task(i, "train", levels[i % 3]) for i in range(n)]


def drive(
    env: Environment, tasks: list[Task], seconds: float, seed: str, limit: int | None = None
) -> tuple[int, float]:
    """Random available actions for ``seconds``; returns (steps, elapsed).

    ``limit`` ends episodes after that many steps, so an unwrapped env sees the
    same episodes as one under StepLimit (resets can cost more than steps).
    """
    rng = random.Random(seed)
    i = 0
    env.reset(tasks[0])
    steps = in_episode = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(16):  # check the clock every few steps, not every step
            actions = env.available_actions()
            obs = env.step(rng.choice(actions) if actions else "look")
            steps += 1
            in_episode += 1
            if obs.done or in_episode == limit:
                i += 1
                in_episode = 0
                env.reset(tasks[i % len(tasks)])
        now = time.perf_counter()
        if now >= deadline:
            return steps, now - t0


def local_rates(env_id: str, rounds: int, seconds: float) -> tuple[float, float]:
    """Best-of-``rounds`` steps/s of the unwrapped class and of ``make(env_id)``."""
    s = spec(env_id)
    raw = s.load()(**s.kwargs)
    raw.env_id = env_id
    wrapped = make(env_id)
    tasks = _tasks(raw)
    limit = s.max_episode_steps
    drive(raw, tasks, 0.2, "warmup", limit)
    drive(wrapped, tasks, 0.2, "warmup")
    best_raw = best_wrapped = 0.0
    for r in range(rounds):
        # The same seed for both: the same actions, the same episodes.
        n, t = drive(raw, tasks, seconds, f"round{r}", limit)
        best_raw = max(best_raw, n / t)
        n, t = drive(wrapped, tasks, seconds, f"round{r}")
        best_wrapped = max(best_wrapped, n / t)
    raw.close()
    wrapped.close()
    return best_raw, best_wrapped


# ---- the server part -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def start_server(isolation: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "palaestra", "serve-env", "--port", str(port), "--register", TOY]
    cmd += ["--isolation", isolation]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the environment server did not start within 30 s")


def _client(url: str, env_id: str, seconds: float, ready: Any, go: Any, out: Any, idx: int) -> None:
    from palaestra.env.server import RemoteEnvironment

    try:
        env = RemoteEnvironment(url, env_id)
        local = make(env_id, max_episode_steps=0)
        tasks = _tasks(local)
        local.close()
        drive(env, tasks, 0.2, f"warmup{idx}")
        ready.put(idx)
        go.wait()
        n, t = drive(env, tasks, seconds, f"client{idx}")
        env.close()
        out.put((idx, n, t, None))
    except Exception as e:  # reported in the table, not a crash of the benchmark
        ready.put(idx)
        out.put((idx, 0, 0.0, f"{type(e).__name__}: {e}"))


def server_rate(
    url: str, pid: int, env_id: str, clients: int, seconds: float
) -> tuple[float, float | None, str | None]:
    """Aggregate steps/s of ``clients`` processes, and the server's CPU µs per step."""
    ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_client, args=(url, env_id, seconds, ready, go, out, i))
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    cpu0 = _cpu_seconds(pid)
    go.set()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    cpu1 = _cpu_seconds(pid)
    for p in procs:
        p.join()
    errors = [r[3] for r in results if r[3]]
    steps = sum(r[1] for r in results)
    # Every client ran for `seconds` from the same start signal.
    rate = sum(r[1] / r[2] for r in results if r[2] > 0)
    cpu = (cpu1 - cpu0) / steps * 1e6 if cpu0 is not None and cpu1 is not None and steps else None
    return rate, cpu, errors[0] if errors else None


# ---- main ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds (about 30 s in all)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent server clients")
    parser.add_argument(
        "--isolation",
        default="auto",
        choices=("auto", "signal", "thread", "none"),
        help="how the server runs env calls (see palaestra serve-env --help)",
    )
    parser.add_argument("--envs", nargs="*", help="ids to run (default: all registered + toy-v1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds, local_s, server_s = (3, 0.3, 2.0) if args.quick else (5, 0.75, 5.0)

    _ensure_toy()
    ids = args.envs or ["toy-v1", *[i for i in registry() if i != "toy-v1"]]
    proc, url = start_server(args.isolation)
    rows: list[dict[str, Any]] = []
    try:
        for env_id in ids:
            row: dict[str, Any] = {"env_id": env_id}
            try:
                raw, wrapped = local_rates(env_id, rounds, local_s)
            except Exception as e:  # a family still being written: note it, go on
                row["skipped"] = f"{type(e).__name__}: {e}"
                rows.append(row)
                console.print(f"[yellow]skip {env_id}[/]: {row['skipped']}")
                continue
            srv, cpu, err = server_rate(url, proc.pid, env_id, args.clients, server_s)
            row |= {
                "raw_steps_per_s": round(raw),
                "make_steps_per_s": round(wrapped),
                "wrapper_overhead_pct": round((raw / wrapped - 1) * 100, 1),
                "server_steps_per_s": round(srv),
                "server_clients": args.clients,
                "server_cpu_us_per_step": round(cpu) if cpu is not None else None,
                "server_error": err,
            }
            rows.append(row)
            console.print(f"{env_id}: {row}")
    finally:
        proc.terminate()
        proc.wait(10)

    table = Table(title=f"Environment throughput (steps/s), {args.clients} server clients")
    for col in ("env", "raw", "make()", "overhead", "server", "server CPU/step"):
        table.add_column(col, justify="left" if col == "env" else "right")
    for r in rows:
        if "skipped" in r:
            table.add_row(r["env_id"], "skipped", "", "", "", "")
            continue
        table.add_row(
            r["env_id"],
            f"{r['raw_steps_per_s']:,}",
            f"{r['make_steps_per_s']:,}",
            f"{r['wrapper_overhead_pct']:+.1f}%",
            f"{r['server_steps_per_s']:,}" + (" (error)" if r["server_error"] else ""),
            f"{r['server_cpu_us_per_step']} µs" if r["server_cpu_us_per_step"] else "",
        )
    console.print(table)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "settings": {
            "quick": args.quick,
            "clients": args.clients,
            "server_isolation": args.isolation,
            "local_rounds": rounds,
            "local_round_s": local_s,
            "server_s": server_s,
        },
        "targets": {"wrapper_overhead_pct_max": 10, "server_steps_per_s_min": 1000},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

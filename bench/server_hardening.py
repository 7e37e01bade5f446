"""Environment server hardening: hostile requests, 5xx seen, and memory under a 50 MiB body.

Against ``palaestra serve-env`` running as its own process on loopback:

- **fuzz**: ``--requests`` seeded random requests over every route, on one
  keep-alive connection — hostile JSON (NaN, Infinity, 1e999, lone
  surrogates, 100,000-deep nesting, 5,000-digit numbers), bytes that are not
  UTF-8, wrong types and methods, unknown keys and snapshot ids such as
  ``"²"``, client-chosen ``sandbox`` / ``allow_unsafe`` / ``base_url`` —
  mixed with valid steps. We count the statuses, the 5xx (target: 0) and the
  times the server dropped the connection (target: 0).
- **50 MiB body**: the server's resident memory (VmRSS, and its peak VmHWM)
  before and after one 50 MiB request body sent with a ``Content-Length``
  and one sent chunked (no length), both refused with 413 by the default
  1 MiB cap; then the same body against a server whose cap was raised to
  100 MiB, which is what a server with no cap does with it.

Results go to a table on stdout and to ``bench/results/server_hardening.json``.

    python bench/server_hardening.py             # about 20 s
    python bench/server_hardening.py --requests 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

TOY = "toy-v1=palaestra.env._toy:ToyEnv"
RESULTS = Path(__file__).parent / "results" / "server_hardening.json"
MIB = 1 << 20
console = Console()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = [sys.executable, "-m", "palaestra", "serve-env", "--port", str(port), "--register", TOY]
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the environment server did not start within 30 s")


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of ``pid``, in MiB (Linux)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


class Conn:
    """One keep-alive connection; counts the times the server dropped it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.drops = 0
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.drops += 1
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0, b""


# ---- the fuzz corpus ---------------------------------------------------------------------

_HOSTILE_VALUES: list[bytes] = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"1" + b"0" * 5000,
    b'"\\ud800"',
    b'"\\udfff x"',
    b'"\\u0000"',
    b'"\xc3\x28"',
    b"[" * 100_000 + b"]" * 100_000,
    b"null",
    b"true",
    b"-1",
    b"3.5",
    b'"\xc2\xb2"',
    b"{}",
    b"[]",
    b'"' + b"a" * 10_000 + b'"',
]
_FIELDS = {
    "/envs": ["env_id", "kwargs", "max_episode_steps", "perturbations", "perturbation_seed"],
    "tasks": ["seed", "split", "difficulty", "params"],
    "reset": ["task", "include_actions"],
    "step": ["action", "include_actions"],
    "restore": ["snapshot_id", "include_actions"],
}
_OPS = ["observation", "available_actions", "progress", "expert", "info", "snapshot"]


def _hostile_body(rng: random.Random, route: str, valid: dict[str, Any]) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if kind == 1:  # not JSON
        return rng.choice([b"{not json", b"{", b'{"a": 1,}', b"\xff\xfe{}", b"'x'"])
    fields = _FIELDS.get(route, ["x"])
    # Valid JSON fields with one hostile value spliced in as raw bytes.
    base = {k: v for k, v in valid.items() if rng.random() < 0.7}
    field = rng.choice([*fields, "unknown"])
    head = json.dumps(base).encode()[:-1]
    sep = b", " if base else b""
    return head + sep + json.dumps(field).encode() + b": " + rng.choice(_HOSTILE_VALUES) + b"}"


def fuzz_requests(
    rng: random.Random, n: int, key: str, task: dict[str, Any]
) -> Iterator[tuple[str, str, bytes | None]]:
    valid: dict[str, dict[str, Any]] = {
        "/envs": {"env_id": "toy-v1"},
        "tasks": {"seed": 1},
        "reset": {"task": task},
        "step": {"action": "inc"},
        "restore": {"snapshot_id": "0"},
    }
    forbidden = [
        {"env_id": "code-v1", "kwargs": {"sandbox": "unsafe-local", "allow_unsafe": True}},
        {"env_id": "agentgym/webshop-v1", "kwargs": {"base_url": "http://169.254.169.254/"}},
    ]
    for _ in range(n):
        k = key if rng.random() < 0.8 else rng.choice(["missing", "%C2%B2", "x" * 300])
        roll = rng.random()
        if roll < 0.25:  # a valid step or reset keeps the episode going
            if rng.random() < 0.2:
                yield "POST", f"/envs/{k}/reset", json.dumps({"task": task}).encode()
            else:
                yield "POST", f"/envs/{k}/step", json.dumps({"action": "inc"}).encode()
        elif roll < 0.3:
            yield "POST", "/envs", json.dumps(rng.choice(forbidden)).encode()
        elif roll < 0.35:
            sid = rng.choice(["²", "٣", "00", "-1", "0" * 5000, "", "99"])
            yield "POST", f"/envs/{k}/restore", json.dumps({"snapshot_id": sid}).encode()
        elif roll < 0.45:
            method = rng.choice(["GET", "PUT", "PATCH", "DELETE", "POST"])
            yield method, rng.choice(["/health", "/envs", f"/envs/{k}/step", "/nope"]), b"{}"
        elif roll < 0.55:
            yield "GET", f"/envs/{k}/{rng.choice(_OPS[:-1])}", None
        else:
            route = rng.choice(list(_FIELDS))
            path = "/envs" if route == "/envs" else f"/envs/{k}/{route}"
            yield "POST", path, _hostile_body(rng, route, valid[route])


def run_fuzz(port: int, n: int, seed: int) -> dict[str, Any]:
    conn = Conn(port)
    status, data = conn.request("POST", "/envs", b'{"env_id": "toy-v1"}')
    key = json.loads(data)["env_key"]
    status, data = conn.request("POST", f"/envs/{key}/tasks", b'{"seed": 0}')
    task = json.loads(data)
    statuses: Counter[int] = Counter()
    bad_shape = 0
    t0 = time.perf_counter()
    for method, path, body in fuzz_requests(random.Random(seed), n, key, task):
        status, data = conn.request(method, path, body)
        statuses[status] += 1
        if status >= 400:
            try:
                bad_shape += set(json.loads(data)) != {"error", "detail"}
            except ValueError:
                bad_shape += 1
    elapsed = time.perf_counter() - t0
    return {
        "requests": n,
        "seconds": round(elapsed, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "connection_drops": conn.drops,
        "error_bodies_off_shape": bad_shape,
    }


# ---- the 50 MiB body ----------------------------------------------------------------------


def _big_body(size: int) -> bytes:
    return b'{"action": "' + b"a" * (size - 14) + b'"}'


def _send_big(port: int, size: int, chunked: bool) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    key = json.loads(_post(conn, "/envs", b'{"env_id": "toy-v1"}'))["env_key"]
    t0 = time.perf_counter()
    body = _big_body(size)
    try:
        if chunked:
            chunks = (body[i : i + MIB] for i in range(0, len(body), MIB))
            conn.request("POST", f"/envs/{key}/step", chunks, encode_chunked=True)
        else:
            conn.request("POST", f"/envs/{key}/step", body)
        response = conn.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        status = 0  # the server hung up on us
    elapsed = time.perf_counter() - t0
    conn.close()
    return status, elapsed


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    return conn.getresponse().read()


def big_body_rows(size: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, args, chunked in [
        ("1 MiB cap, Content-Length", (), False),
        ("1 MiB cap, chunked", (), True),
        ("100 MiB cap (as if uncapped)", ("--max-body-bytes", str(100 * MIB)), False),
    ]:
        proc, port = start_server(*args)
        try:
            time.sleep(0.5)
            before = memory_mib(proc.pid)
            status, seconds = _send_big(port, size, chunked)
            time.sleep(0.5)
            after = memory_mib(proc.pid)
            alive = Conn(port).request("GET", "/health")[0] == 200
        finally:
            proc.terminate()
            proc.wait(10)
        rows.append(
            {
                "case": label,
                "body_mib": round(size / MIB, 1),
                "status": status,
                "seconds": round(seconds, 2),
                "rss_before_mib": before["VmRSS"],
                "rss_after_mib": after["VmRSS"],
                "peak_rss_before_mib": before["VmHWM"],
                "peak_rss_after_mib": after["VmHWM"],
                "server_alive_after": alive,
            }
        )
        console.print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="fuzz requests to send")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--body-mib", type=float, default=50, help="size of the big body")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    proc, port = start_server()
    try:
        fuzz = run_fuzz(port, args.requests, args.seed)
        fuzz["server_rss_mib"] = memory_mib(proc.pid)["VmRSS"]
    finally:
        proc.terminate()
        proc.wait(10)
    console.print(fuzz)
    big = big_body_rows(int(args.body_mib * MIB))

    table = Table(title="Environment server under hostile requests (one keep-alive connection)")
    for col in ("requests sent", "5xx seen", "connection drops", "error bodies off-shape"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{fuzz['requests']:,}",
        str(fuzz["server_errors_5xx"]),
        str(fuzz["connection_drops"]),
        str(fuzz["error_bodies_off_shape"]),
    )
    console.print(table)
    table = Table(title=f"Server memory around one {args.body_mib:g} MiB request body")
    for col in ("case", "status", "RSS before", "RSS after", "peak RSS after", "alive after"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in big:
        table.add_row(
            r["case"],
            str(r["status"]),
            f"{r['rss_before_mib']} MiB",
            f"{r['rss_after_mib']} MiB",
            f"{r['peak_rss_after_mib']} MiB",
            "yes" if r["server_alive_after"] else "NO",
        )
    console.print(table)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "settings": {"requests": args.requests, "seed": args.seed, "body_mib": args.body_mib},
        "targets": {"server_errors_5xx": 0, "connection_drops": 0, "big_body_status": 413},
        "fuzz": fuzz,
        "big_body": big,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

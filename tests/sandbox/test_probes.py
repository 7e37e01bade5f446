"""The probe suite (issue 7, section 2): code inside the sandbox tries to escape and must fail.

Parametrized over every isolating backend usable on this machine. Each probe
asserts the specific containment and then checks the host (nothing received,
no file written, no process left). ``test_probes_can_fail`` runs the network
and file probes under ``unsafe-local`` and shows they *do* escape there, so a
passing probe means something.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sandbox_helpers import ISOLATING, backend_params, marked_processes, open_started

from palaestra.sandbox import Sandbox, SandboxLimits
from palaestra.sandbox._process import ProcessSandbox

BACKENDS = backend_params(ISOLATING)
FAKE_KEY = "sk-fake-" + "0123456789abcdef" * 2


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.3)
    yield srv
    srv.close()


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.3)
    yield rx
    rx.close()


def _tcp_probe(port: int) -> str:
    return (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('blocked', e)\n"
    )


def _udp_probe(port: int) -> str:
    return (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        f"    s.sendto(b'ping-from-sandbox', ('127.0.0.1', {port}))\n"
        "    print('sent')\n"
        "except OSError as e:\n"
        "    print('blocked', e)\n"
    )


def _accepted(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def _received(rx: socket.socket) -> bool:
    try:
        rx.recv(100)
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_no_tcp_to_host_loopback(sandbox: Sandbox, tcp_listener: socket.socket) -> None:
    port = tcp_listener.getsockname()[1]
    r = sandbox.python(_tcp_probe(port))
    assert r.ok and r.stdout.startswith("blocked"), r
    assert not _accepted(tcp_listener)


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_no_udp_out(sandbox: Sandbox, udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    sandbox.python(_udp_probe(port))  # sendto may "succeed" into the private namespace
    assert not _received(udp_receiver)
    # No interface but (at most) the sandbox's own loopback.
    r = sandbox.exec("cat /proc/net/dev")
    ifaces = {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]}
    assert ifaces <= {"lo"}, ifaces


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_host_files_are_not_readable(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-" + uuid.uuid4().hex)
    host_passwd = Path("/etc/passwd").read_text()
    paths = [
        "/etc/shadow",
        str(secret),
        "/root/.bashrc",
        "/etc/hostname",
        "/work/main/pyproject.toml",
    ]
    code = (
        "import json\nres = {}\n"
        f"for p in {paths!r}:\n"
        "    try:\n        res[p] = open(p).read()\n"
        "    except OSError as e:\n        res[p] = type(e).__name__\n"
        "res['passwd'] = open('/etc/passwd').read()\nprint(json.dumps(res))"
    )
    r = sandbox.python(code)
    assert r.ok, r
    import json

    res = json.loads(r.stdout)
    for p in paths:
        assert res[p] in ("FileNotFoundError", "PermissionError"), (p, res[p])
    # /etc/passwd is synthetic: only root and nobody, none of the host's accounts.
    assert res["passwd"] != host_passwd
    assert {line.split(":")[0] for line in res["passwd"].splitlines()} <= {"root", "nobody"}


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_no_writes_outside_the_workdir(sandbox: Sandbox, tmp_path: Path) -> None:
    name = "pwned-" + uuid.uuid4().hex
    targets = [f"{tmp_path}/{name}", f"/tmp/{name}", f"/usr/{name}", f"/etc/{name}", f"/{name}"]
    code = (
        f"for p in {targets!r}:\n"
        "    try:\n        open(p, 'w').write('x')\n        print('WROTE', p)\n"
        "    except OSError as e:\n        print('blocked', p, type(e).__name__)\n"
        "open('inside.txt', 'w').write('fine')\n"
    )
    r = sandbox.python(code)
    assert r.ok, r
    # /tmp inside is a private tmpfs: writing there is allowed but never reaches the host.
    for p in targets:
        assert not Path(p).exists(), p
    assert sandbox.read_file("inside.txt") == b"fine"
    assert "WROTE /usr" not in r.stdout and "WROTE /etc" not in r.stdout


def test_parent_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    for backend in ISOLATING:
        if backend_params((backend,))[0].marks:  # type: ignore[attr-defined]
            continue
        sb = open_started(backend)
        try:
            r = sandbox_env = sb.python(
                "import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ').read())\n"
                "print(open('/proc/1/environ').read())"
            )
            assert sandbox_env.ok, r
            assert FAKE_KEY not in r.stdout and "OPENAI_API_KEY" not in r.stdout
            assert FAKE_KEY not in sb.exec("env; cat /proc/*/environ 2>/dev/null").stdout
        finally:
            sb.close()


def _count_while(sb: ProcessSandbox, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], len(marked_processes(sb.id)))
        time.sleep(0.05)


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_shell_fork_bomb_is_capped(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_count_while, args=(sandbox, stop, peak))
    watcher.start()
    try:
        r = sandbox.exec(":(){ :|:& };:", timeout=2)
    finally:
        stop.set()
        watcher.join()
    assert r.exit_code is not None or r.timed_out
    limit = sandbox.limits.max_processes
    assert 0 < peak[0] <= limit + 2, f"peak {peak[0]} processes with max_processes={limit}"
    sandbox.close()
    assert marked_processes(sandbox.id) == []


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_python_fork_loop_is_capped(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    code = (
        "import os, time\nn = 0\n"
        "while n < 500:\n"
        "    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(1000.777)\n        os._exit(0)\n"
        "    n += 1\nn"
    )
    r = sandbox.python(code, timeout=10)
    assert r.ok, r
    assert 0 < int(r.stdout) < sandbox.limits.max_processes
    sandbox.close()
    assert marked_processes(sandbox.id) == []


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_two_gib_allocation_fails(sandbox: Sandbox) -> None:
    r = sandbox.python("b = bytearray(2 * 1024**3)")
    assert r.error is not None and "MemoryError" in r.error
    assert sandbox.python("len(bytearray(10 * 1024**2))").stdout == f"{10 * 1024**2}\n"


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_cpu_spin_times_out_and_leaves_nothing(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    r = sandbox.python("while True:\n    pass", timeout=0.5)
    assert r.timed_out
    r = sandbox.exec("while :; do :; done", timeout=0.5)
    assert r.timed_out
    # Only the fresh interpreter's tree is left: no spinning process survived.
    time.sleep(0.1)
    for pid in marked_processes(sandbox.id):
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[11]) + int(stat[12]) < 50, "a spinning process survived the timeout"


@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_loop_is_capped_without_a_cgroup(backend: str) -> None:
    """The fallback for root without a usable cgroup: drop to uid 65534, RLIMIT_NPROC inside."""
    from palaestra.sandbox._open import _CLASSES

    sb = _CLASSES[backend](SandboxLimits(max_processes=16), _force_pids_mode="nobody")
    with sb:
        assert sb.exec("id -u").stdout.strip() in ("0", "65534")
        r = sb.python(
            "import os\nn = 0\nwhile n < 200:\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        import time\n"
            "        time.sleep(1000.555)\n    n += 1\nn"
        )
        assert r.ok and 0 < int(r.stdout) < 16, r
    assert marked_processes("1000.555") == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_processes_left_after_close(backend: str) -> None:
    sb = open_started(backend, SandboxLimits())
    assert isinstance(sb, ProcessSandbox)
    sb.exec(
        "sleep 1000.31337 & env -i setsid sleep 1000.31337 & nohup sleep 1000.31337 >/dev/null 2>&1 &"
    )
    sb.python(
        "import subprocess\n"
        "subprocess.Popen(['sleep', '1000.31337'], start_new_session=True)\n"
        "subprocess.Popen(['sh', '-c', '(sleep 1000.31337 &) &'])"
    )
    time.sleep(0.2)
    assert len(marked_processes("1000.31337")) >= 4
    sb.close()
    time.sleep(0.1)
    assert marked_processes("1000.31337") == []
    assert marked_processes(sb.id) == []


@pytest.mark.parametrize("sandbox", backend_params(("unsafe-local",)), indirect=True)
def test_probes_can_fail(
    sandbox: Sandbox, tcp_listener: socket.socket, udp_receiver: socket.socket, tmp_path: Path
) -> None:
    """The control group: without isolation the same probes do escape."""
    r = sandbox.python(_tcp_probe(tcp_listener.getsockname()[1]))
    assert r.stdout.startswith("CONNECTED") and _accepted(tcp_listener)
    sandbox.python(_udp_probe(udp_receiver.getsockname()[1]))
    assert _received(udp_receiver)
    sandbox.python(f"open({str(tmp_path / 'escaped')!r}, 'w').write('x')")
    assert (tmp_path / "escaped").exists()

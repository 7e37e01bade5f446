"""The probe suite (issue 7, section 2): code inside the sandbox tries to escape and must fail.

Parametrized over every isolating backend usable on this machine. Each probe
asserts the specific containment and then checks the host (nothing received,
no file written, no process left). ``test_probes_can_fail`` runs the network
and file probes under ``unsafe-local`` and shows they *do* escape there, so a
passing probe means something. The host-side probes (issue 13: symlinks, FIFOs
and hard links planted where the host reads, forged replies) get the same
proof from ``test_host_probes_can_fail``, with the defence each one checks
reverted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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
        # /bin/sh is dash, which refuses ":" as a function name (the classic spelling never
        # forks); without the trailing "&" the bomb runs inside this call, not after it.
        r = sandbox.exec("bomb() { bomb | bomb; }; bomb", timeout=2)
    finally:
        stop.set()
        watcher.join()
    # The cap refuses forks, so the bomb collapses with an error instead of filling the host.
    assert "Cannot fork" in r.stderr and not r.ok, r
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


# ---- the host's side of the boundary (issue 13) ---------------------------------------------
#
# Code inside plants things where the host later reads or writes (the capture files of a cell,
# the work directory) or writes to the reply pipe. Each probe returns what escaped (empty when
# the sandbox held), so `test_host_probes_can_fail` can run it against a weakened host too.


def _canary(tmp_path: Path) -> tuple[Path, str]:
    canary = tmp_path / "canary.txt"
    text = "HOST-CANARY-" + uuid.uuid4().hex
    canary.write_text(text)
    return canary, text


def _capture_dir(sb: ProcessSandbox) -> str:
    """Where a call's output files were, by name, before issue 13 (``unsafe-local``: its TMPDIR).

    The host now passes unnamed files by descriptor, so nothing is there; the
    probes plant in this place anyway, and ``test_host_probes_can_fail`` puts
    named output files back here to show the probes catch a host that reads
    them by path.
    """
    return "/tmp/.palaestra" if sb.isolating else str(sb.host_scratch)


def _plant(scratch: str, make: str) -> str:
    """Code that replaces every file of the capture dir (and the old names) via ``make(path)``."""
    return (
        "import os\n"
        f"S = {scratch!r}\n"
        "os.makedirs(S, exist_ok=True)\n"
        "for name in set(os.listdir(S)) | {'cell.out', 'cell.err', 'exec.out', 'exec.err'}:\n"
        "    p = os.path.join(S, name)\n"
        "    try:\n        os.unlink(p)\n    except OSError:\n        pass\n"
        f"    {make}\n"
    )


def _host_call(fn: Callable[[], object], unblock: Callable[[], None], limit: float) -> object:
    """``fn()`` in a thread; if the host is still blocked after ``limit`` s, say so (and free it)."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as e:
            box.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if not worker.is_alive():
        return box[0]
    while worker.is_alive():  # release the blocked open so the test run can go on
        unblock()
        worker.join(0.2)
    return f"BLOCKED the host for more than {limit:g} s"


def _open_fifos(*dirs: Path) -> None:
    """Open every FIFO under ``dirs`` from both ends without blocking: frees a host stuck on one."""
    for d in dirs:
        for p in d.rglob("*") if d.is_dir() else ():
            if p.is_fifo():
                for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
                    with contextlib.suppress(OSError):
                        os.close(os.open(p, flags))


def symlink_probe(sb: ProcessSandbox, tmp_path: Path) -> list[str]:
    """A cell swaps its capture files for symlinks to a host file, then times out (both paths)."""
    canary, text = _canary(tmp_path)
    escaped: list[str] = []
    plant = _plant(_capture_dir(sb), f"os.symlink({str(canary)!r}, p)")
    r = sb.python(plant + "while True:\n    pass", timeout=0.5)
    if text in r.stdout + r.stderr:
        escaped.append(f"python() timeout returned the host file: {r.stdout[:80]!r}")
    # exec(): a thread left by a cell takes the GIL for good (a long C loop), so the driver
    # never answers, the host's own deadline fires and it reads the output back itself.
    scratch = _capture_dir(sb)
    sb.python(
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), sum(range(10**13))), daemon=True).start()"
    )
    r = sb.exec(
        f'mkdir -p {scratch} && cd {scratch} && for n in * exec.out exec.err; do rm -f "$n"; '
        f'ln -s {canary} "$n"; done; sleep 30',
        timeout=1.0,
    )
    if text in r.stdout + r.stderr:
        escaped.append(f"exec() timeout returned the host file: {r.stdout[:80]!r}")
    return escaped


def fifo_probe(sb: ProcessSandbox, tmp_path: Path) -> list[str]:
    """FIFOs in place of the capture files and in the work dir must not block the host."""
    escaped: list[str] = []

    def unblock() -> None:
        _open_fifos(sb.host_workdir.parent)

    sb.python("import os\nos.mkfifo('fifo')")
    for what, op in (
        ("read_file", lambda: sb.read_file("fifo")),
        ("write_file", lambda: sb.write_file("fifo", "x")),
    ):
        r = _host_call(op, unblock, 1.5)
        if isinstance(r, str):
            escaped.append(f"{what}: {r}")
        elif not isinstance(r, OSError):
            escaped.append(f"{what} treated a FIFO as a file: {r!r}")
    # Last: the restart after the timeout happens in _host_call's thread, and a sandbox
    # dies with the thread that started it (PDEATHSIG), so `sb` is not used after this.
    plant = _plant(_capture_dir(sb), "os.mkfifo(p)")
    r = _host_call(lambda: sb.python(plant + "while True:\n    pass", timeout=0.5), unblock, 3)
    if isinstance(r, str):
        escaped.append(f"python() timeout: {r}")
    elif isinstance(r, BaseException):
        escaped.append(f"python() timeout raised {r!r}")
    return escaped


def hardlink_probe(sb: ProcessSandbox, tmp_path: Path) -> list[str]:
    """Hard links to host files, planted in the work and capture dirs, must not be read back."""
    canary, text = _canary(tmp_path)
    sources = [str(canary), "/etc/passwd", "/etc/ld.so.cache", "/usr/bin/env"]
    scratch = _capture_dir(sb)
    code = (
        "import os\nmade = []\n"
        f"for i, src in enumerate({sources!r}):\n"
        f"    for d in ({sb.workdir!r}, {scratch!r}):\n"
        "        dst = os.path.join(d, 'hl%d' % i)\n"
        "        try:\n            os.link(src, dst)\n            made.append(dst)\n"
        "        except OSError:\n            pass\n"
        "print(made)"
    )
    r = sb.python(code)
    escaped: list[str] = []
    for i, src in enumerate(sources):
        try:
            data = sb.read_file(f"hl{i}")
        except OSError:
            continue
        host = Path(src).read_bytes()
        if data == host:
            escaped.append(f"read_file returned host file {src} through a hard link ({r.stdout!r})")
        if text.encode() in data:
            escaped.append(f"read_file returned the canary through a hard link ({r.stdout!r})")
    return escaped


_FORGE = """
import json, os, stat, sys
from fcntl import F_GETFL, fcntl
def _request():
    # The strongest forger: copy every field of the request being served from the driver's frames.
    for frame in sys._current_frames().values():
        while frame is not None:
            for v in list(frame.f_locals.values()):
                if isinstance(v, dict) and v.get("op") in ("run", "exec"):
                    return {k: x for k, x in v.items() if k not in ("op", "code", "argv")}
            frame = frame.f_back
    return {}
def forge(copy_request):
    msg = {"op": "done", "stdout": "FORGED-OUTPUT", "stderr": "", "exit_code": 0,
           "error": None, "truncated": False, "timed_out": False}
    if copy_request:
        msg.update(_request())
    line = (json.dumps(msg) + "\\n").encode()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl(fd, F_GETFL) & 3 == 1:
                os.write(fd, line)
        except OSError:
            pass
"""


def forged_reply_probe(sb: ProcessSandbox, *, copy_request: bool) -> list[str]:
    """A cell writes "done" replies to every pipe it can write, now and during the next cell.

    ``copy_request``: the forger copies the current request's fields (a nonce, say) from
    the interpreter's memory, which code in the same process can always do; it may then end
    its own cell early, but must still not inject text or shift later cells' results.
    """
    flag = repr(copy_request)
    r1 = sb.python(
        _FORGE + f"forge({flag})\n"
        "import threading, time\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), forge({flag})), daemon=True).start()\n"
        "print('REAL-1')"
    )
    r2 = sb.python("import time\ntime.sleep(1.0)\nprint('REAL-2')")
    time.sleep(0.2)
    r3 = sb.python("print('REAL-3')")
    escaped = [
        f"cell {i} returned forged output {r.stdout!r}"
        for i, r in enumerate((r1, r2, r3), 1)
        if "FORGED" in r.stdout
    ]
    if r3.stdout != "REAL-3\n":
        escaped.append(f"cell 3 returned {r3.stdout!r}, not its own output")
    if not copy_request:
        for i, r in enumerate((r1, r2), 1):
            if r.stdout != f"REAL-{i}\n":
                escaped.append(f"cell {i} returned {r.stdout!r}, not its own output")
    return escaped


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_issue_13_exploit_as_written_fails(sandbox: Sandbox) -> None:
    shadow = Path("/etc/shadow")
    r = sandbox.python(
        "import os\nos.unlink('/tmp/.palaestra/cell.out')\n"
        "os.symlink('/etc/shadow', '/tmp/.palaestra/cell.out')\nwhile True: pass",
        timeout=0.5,
    )
    with contextlib.suppress(OSError):
        assert shadow.read_text()[:40] not in r.stdout
    assert "root:" not in r.stdout, r


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_planted_symlinks_are_not_followed_by_the_host(sandbox: Sandbox, tmp_path: Path) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    assert symlink_probe(sandbox, tmp_path) == []
    assert sandbox.python("1").stdout == "1\n"


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_planted_fifos_do_not_block_the_host(sandbox: Sandbox, tmp_path: Path) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    assert fifo_probe(sandbox, tmp_path) == []


@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_hard_links_do_not_reach_host_files(sandbox: Sandbox, tmp_path: Path) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    assert hardlink_probe(sandbox, tmp_path) == []


@pytest.mark.parametrize("copy_request", [False, True], ids=["blind", "copies-request"])
@pytest.mark.parametrize("sandbox", BACKENDS, indirect=True)
def test_replies_cannot_be_forged(sandbox: Sandbox, copy_request: bool) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    assert forged_reply_probe(sandbox, copy_request=copy_request) == []


class _NamedOutput:
    """The pre-issue-13 output file: named, in a directory the code can write, read by path."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}-{uuid.uuid4().hex[:8]}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def read(self, limit: int) -> tuple[str, bool]:
        with open(self.path, "rb") as f:  # the weakness: a plain open of a path
            return f.read(limit).decode("utf-8", "replace"), False

    def close(self) -> None:
        os.close(self.fd)


def _plain_open(root: Path, parts: tuple[str, ...], flags: int, **_: object) -> int:
    return os.open(os.path.join(root, *parts), flags, 0o644)


@pytest.mark.parametrize("probe", ["symlink", "fifo", "hardlink", "forged-blind", "forged-copy"])
@pytest.mark.parametrize("sandbox", backend_params(("unsafe-local",)), indirect=True)
def test_host_probes_can_fail(
    sandbox: Sandbox, probe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host-side probes catch a host that reads by path, opens plainly or trusts any reply.

    Each runs under ``unsafe-local`` with the matching defence switched back
    to what it was before issue 13; it must then report an escape.
    """
    from palaestra.sandbox import _process

    assert isinstance(sandbox, ProcessSandbox)
    sb = sandbox

    def named_output(name: str) -> _NamedOutput:
        return _NamedOutput(sb.host_scratch, name)

    def any_reply(msg: object, rid: str) -> bool:
        return True

    if probe in ("symlink", "fifo"):  # output read back by path
        monkeypatch.setattr(_process, "OutputFile", named_output)
    if probe in ("fifo", "hardlink"):  # read_file/write_file: a plain open, no checks
        monkeypatch.setattr(_process, "open_beneath", _plain_open)
    if probe.startswith("forged"):  # any reply accepted
        monkeypatch.setattr(_process, "_answers", any_reply)
    if probe == "symlink":
        escaped = symlink_probe(sb, tmp_path)
    elif probe == "fifo":
        escaped = fifo_probe(sb, tmp_path)
    elif probe == "hardlink":
        escaped = hardlink_probe(sb, tmp_path)
    else:
        escaped = forged_reply_probe(sb, copy_request=probe == "forged-copy")
    assert escaped, f"the {probe} probe did not notice a weakened host"

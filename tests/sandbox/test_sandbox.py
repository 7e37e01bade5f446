"""The sandbox contract on every usable backend: interpreter, host functions, limits, death."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from _sandbox_helpers import backend_params, marked_processes, open_started

from palaestra.env import EnvError
from palaestra.sandbox import (
    NoSandboxBackend,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
    open_sandbox,
)
from palaestra.sandbox._process import ProcessSandbox

# The machinery is shared by every backend: the contract is tested on unsafe-local and the
# default backend; the second backend gets a smoke test here and the whole probe suite.
ALL = backend_params(("unsafe-local", "bubblewrap"))


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_globals_persist_and_last_expression_is_shown(sandbox: Sandbox) -> None:
    r1 = sandbox.python("x = 41\ndef f(y):\n    return y + 1")
    assert r1.ok and r1.stdout == ""
    r2 = sandbox.python("print('x is', x)\nf(x)")
    assert r2.ok
    assert r2.stdout == "x is 41\n42\n"
    assert sandbox.python("None").stdout == ""


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_exception_is_a_result_and_raw_fd_output_is_captured(sandbox: Sandbox) -> None:
    r = sandbox.python(
        "import os, sys\nos.write(1, b'raw\\n')\nprint('err', file=sys.stderr)\n{}['k']"
    )
    assert not r.ok and r.exit_code == 1
    assert r.stdout == "raw\n" and r.stderr == "err\n"
    assert r.error is not None and r.error.endswith("KeyError: 'k'")
    assert "<cell-" in r.error and "_driver" not in r.error
    # A child process writing to the inherited fd 1 is captured too, not mixed into the protocol.
    r = sandbox.python("import subprocess\nsubprocess.run(['echo', 'from child'])\n'done'")
    assert r.ok and r.stdout == "from child\n'done'\n"
    assert sandbox.python("raise SystemExit(3)").error is not None
    assert sandbox.python("1 + 1").stdout == "2\n"  # SystemExit did not end the interpreter


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_host_functions_round_trip_and_exceptions(sandbox: Sandbox) -> None:
    calls: list[object] = []

    def click(target: str, times: int = 1) -> dict[str, object]:
        calls.append((target, times))
        return {"clicked": target, "times": times}

    def broken() -> None:
        raise ValueError("no such button")

    def opaque() -> object:
        return object()

    fns = {"click": click, "broken": broken, "opaque": opaque}
    r = sandbox.python("r = click('ok', times=2)\nr['times']", host_functions=fns)
    assert r.ok and r.stdout == "2\n" and calls == [("ok", 2)]
    r = sandbox.python(
        "try:\n    broken()\nexcept RuntimeError as e:\n    print(type(e).__name__, e)",
        host_functions=fns,
    )
    assert r.ok and r.stdout == "RuntimeError no such button\n"
    r = sandbox.python("opaque()", host_functions=fns)
    assert r.error is not None and "not JSON" in r.error
    r = sandbox.python("click(object())", host_functions=fns)
    assert r.error is not None and "JSON" in r.error
    # Bound for one call only.
    assert "NameError" in (sandbox.python("click('x')").error or "")


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_host_function_infrastructure_failure_propagates(sandbox: Sandbox) -> None:
    def dead() -> None:
        raise EnvError("the browser crashed")

    with pytest.raises(EnvError, match="browser crashed"):
        sandbox.python("dead()", host_functions={"dead": dead})
    assert sandbox.python("1").stdout == "1\n"  # the interpreter was restarted and works


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_output_is_truncated(sandbox: Sandbox) -> None:
    r = sandbox.python("print('a' * 10_000)")
    assert r.ok and r.truncated and len(r.stdout) == 4000
    r = sandbox.exec("head -c 9000 /dev/zero | tr '\\0' b")
    assert r.truncated and r.stdout == "b" * 4000
    assert not sandbox.python("print('short')").truncated


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_timeout_restarts_the_interpreter(sandbox: Sandbox) -> None:
    sandbox.python("kept = 1")
    t0 = time.monotonic()
    r = sandbox.python("print('started', flush=True)\nwhile True:\n    pass", timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert r.timed_out and r.exit_code is None and not r.ok
    assert r.stdout == "started\n"
    assert "restarted" in r.stderr
    assert "NameError" in (sandbox.python("kept").error or "")
    assert sandbox.healthy()


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_exec_argv_shell_stdin_exit_and_timeout(sandbox: Sandbox) -> None:
    r = sandbox.exec("echo $HOME; pwd; exit 3")
    assert r.exit_code == 3 and not r.ok
    assert r.stdout == f"{sandbox.workdir}\n{sandbox.workdir}\n"
    r = sandbox.exec(["python3", "-c", "import sys; print(sys.stdin.read().upper())"], stdin="abc")
    assert r.ok and r.stdout == "ABC\n"
    r = sandbox.exec("echo before; sleep 30", timeout=0.5)
    assert r.timed_out and r.exit_code is None and r.stdout == "before\n"
    assert sandbox.exec(["definitely-not-a-program"]).exit_code == 127


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_files_round_trip_and_stay_inside(sandbox: Sandbox) -> None:
    sandbox.write_file("data/in.txt", "héllo")
    assert sandbox.python("open('data/in.txt', encoding='utf-8').read()").stdout == "'héllo'\n"
    sandbox.python("open('out.bin', 'wb').write(bytes(range(5)))")
    assert sandbox.read_file("out.bin") == bytes(range(5))
    assert sandbox.read_file(f"{sandbox.workdir}/out.bin") == bytes(range(5))
    with pytest.raises(ValueError, match="outside the work directory"):
        sandbox.read_file("../../etc/hostname")
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("missing.txt")


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_host_side_file_access_does_not_follow_planted_symlinks(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    sandbox.python(
        f"import os\nos.symlink({str(secret)!r}, 'link')\nos.symlink({str(tmp_path)!r}, 'dir')"
    )
    with pytest.raises(PermissionError, match="symbolic link"):
        sandbox.read_file("link")
    with pytest.raises(PermissionError):
        sandbox.write_file("dir/new.txt", "x")
    with pytest.raises(PermissionError):
        sandbox.write_file("link", "overwrite")
    assert secret.read_text() == "host secret"
    assert not (tmp_path / "new.txt").exists()


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_killed_interpreter_is_sandbox_unavailable(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, ProcessSandbox) and sandbox.healthy()
    host_pid = sandbox.python("import os\nos.getpid()").stdout.strip()
    if sandbox.backend == "unsafe-local":
        os.kill(int(host_pid), signal.SIGKILL)
    else:  # inside a pid namespace: find the interpreter on the host by its marker
        pids = [
            p
            for p in marked_processes(sandbox.id)
            if b"-I" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert pids
        for p in pids:
            # a process may already have died with its parent (bubblewrap's --die-with-parent)
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    time.sleep(0.1)
    assert not sandbox.healthy()
    with pytest.raises(SandboxUnavailable, match="died"):
        sandbox.python("1")
    # It is an EnvError, so the rollout engine records an error outcome.
    assert issubclass(SandboxUnavailable, EnvError)


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_deleted_workdir_is_sandbox_unavailable(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    shutil.rmtree(sandbox.host_workdir)
    with pytest.raises(SandboxUnavailable, match="work directory"):
        sandbox.python("1")


@pytest.mark.parametrize("sandbox", backend_params(("unsafe-local",)), indirect=True)
def test_full_disk_is_sandbox_unavailable(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage(NamedTuple):
        total: int
        used: int
        free: int

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10, 10, 0))  # pyright: ignore[reportUnknownLambdaType]
    with pytest.raises(SandboxUnavailable, match="full"):
        sandbox.exec("true")


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_file_size_limit_is_an_ordinary_error(sandbox: Sandbox) -> None:
    # RLIMIT_FSIZE (64 MiB here): the write fails inside user code; the sandbox lives on.
    r = sandbox.python("f = open('big', 'wb')\nfor _ in range(80):\n    f.write(bytes(1 << 20))")
    assert r.error is not None and "File too large" in r.error
    assert sandbox.healthy()


@pytest.mark.parametrize("sandbox", backend_params(("unshare",)), indirect=True)
def test_second_backend_smoke(sandbox: Sandbox) -> None:
    sandbox.write_file("in.txt", "abc")
    assert sandbox.python("data = open('in.txt').read()\ndata.upper()").stdout == "'ABC'\n"
    r = sandbox.exec("cat in.txt; echo; pwd; id -u")
    assert r.ok and r.stdout == "abc\n/work\n0\n"
    sandbox.python("open('out.txt', 'w').write(data * 2)")
    assert sandbox.read_file("out.txt") == b"abcabc"


def test_lifecycle_misuse_and_context_manager() -> None:
    sb = open_sandbox("unsafe-local", allow_unsafe=True)
    with pytest.raises(SandboxError, match="start"):
        sb.python("1")
    with sb:
        assert sb.python("1").ok
        root = Path(sb.workdir).parent
    assert not root.exists()
    sb.close()  # idempotent
    with pytest.raises(SandboxError, match="closed"):
        sb.exec("true")


def test_unsafe_local_needs_the_flag_and_auto_never_picks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(NoSandboxBackend, match="allow_unsafe"):
        open_sandbox("unsafe-local")
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        open_sandbox("docker")
    from palaestra.sandbox import _open

    problems = _open._PROBLEMS  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setitem(problems, "bubblewrap", lambda: "bwrap is not installed")
    monkeypatch.setitem(problems, "unshare", lambda: "no user namespaces")
    with pytest.raises(NoSandboxBackend, match="apt-get install bubblewrap"):
        open_sandbox()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        SandboxLimits(max_processes=0)
    with pytest.raises(ValueError):
        SandboxLimits(cpu_limit=3)  # type: ignore[call-arg]


def test_close_leaves_no_processes_behind() -> None:
    sb = open_started("unsafe-local", SandboxLimits())
    assert isinstance(sb, ProcessSandbox)
    sb.exec("sleep 1000.4242 &")
    assert marked_processes("1000.4242")
    sb.close()
    assert marked_processes("1000.4242") == []
    assert marked_processes(sb.id) == []


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_garbage_on_the_reply_pipe_is_dropped(sandbox: Sandbox) -> None:
    # Code can reach the driver's reply pipe; what it writes there is not a reply.
    r = sandbox.python(
        "import os\nfor fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    try:\n        os.write(fd, b'not json\\n[1, 2]\\n\"str\"\\n') if fd > 2 else None\n"
        "    except OSError:\n        pass\nprint('after')"
    )
    assert r.ok and r.stdout == "after\n", r
    assert sandbox.python("1 + 1").stdout == "2\n"


def test_channel_drops_over_long_lines_without_holding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from palaestra.sandbox import _channel

    monkeypatch.setattr(_channel, "MAX_MESSAGE_BYTES", 1000)
    r, w = os.pipe()
    a, b = socket.socketpair()
    chan = _channel.Channel(a, r)
    try:
        os.write(w, b"x" * 5000)
        assert chan.read(time.monotonic() + 0.2) is None
        assert len(chan._buf) <= 1000 + (1 << 16)  # pyright: ignore[reportPrivateUsage]
        os.write(w, b"y" * 3000 + b'{"op": "forged"}\n{"op": "done", "id": "1"}\n')
        assert chan.read(time.monotonic() + 1) == {"op": "done", "id": "1"}
    finally:
        chan.close()
        b.close()
        os.close(w)


@pytest.mark.parametrize("sandbox", backend_params(("unsafe-local",)), indirect=True)
def test_read_file_checks_what_it_opened(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, ProcessSandbox)
    (sandbox.host_workdir / "plain.txt").write_text("ok")
    assert sandbox.read_file("plain.txt") == b"ok"
    os.link(sandbox.host_workdir / "plain.txt", sandbox.host_workdir / "second-name.txt")
    with pytest.raises(PermissionError, match="hard links"):
        sandbox.read_file("plain.txt")
    with pytest.raises(PermissionError, match="hard links"):
        sandbox.write_file("second-name.txt", "truncated?")
    assert (sandbox.host_workdir / "plain.txt").read_text() == "ok"
    os.mkfifo(sandbox.host_workdir / "fifo")
    with pytest.raises(PermissionError, match="not a regular file"):
        sandbox.read_file("fifo")
    with pytest.raises(PermissionError, match="not a regular file"):
        sandbox.write_file("fifo", "x")
    if os.geteuid() == 0:
        other = sandbox.host_workdir / "other-owner.txt"
        other.write_text("x")
        os.chown(other, 12345, 12345)
        with pytest.raises(PermissionError, match="owned by uid 12345"):
            sandbox.read_file("other-owner.txt")


@pytest.mark.parametrize("sandbox", ALL, indirect=True)
def test_timeout_in_a_short_lived_thread_leaves_a_live_interpreter(sandbox: Sandbox) -> None:
    # The restart after a timeout happens on the caller's thread; the interpreter must not be
    # tied to that thread's life (the parent-death signal fires when the *thread* ends).
    results: list[object] = []

    def cell() -> None:
        results.append(sandbox.python("while True:\n    pass", timeout=0.3))

    for _ in range(2):  # a relaunch from a relaunched sandbox's thread, too
        worker = threading.Thread(target=cell)
        worker.start()
        worker.join()
        time.sleep(0.3)  # let a parent-death signal land, if one was armed
        assert sandbox.healthy()
        assert sandbox.python("1 + 1").stdout == "2\n"
    assert all(getattr(r, "timed_out", False) for r in results)


def test_sandbox_started_in_a_short_lived_thread_outlives_it() -> None:
    boxes: list[Sandbox] = []
    worker = threading.Thread(target=lambda: boxes.append(open_started("unsafe-local")))
    worker.start()
    worker.join()
    (sb,) = boxes
    ours = [t for t in threading.enumerate() if t.name == f"palaestra-{sb.id}-launcher"]
    assert len(ours) == 1
    try:
        time.sleep(0.3)
        assert sb.healthy()
        assert sb.python("1 + 1").stdout == "2\n"
    finally:
        sb.close()
    # its launcher thread ends with it (other tests' sandboxes are not this test's business)
    ours[0].join(timeout=10)
    assert not ours[0].is_alive()

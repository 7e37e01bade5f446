"""``bubblewrap``: the default backend, built on Debian's ``bwrap`` (namespaces, no daemon).

Isolation (flags as in issue 7; the same approach as Flatpak's sandbox):

- ``--unshare-all`` (user, pid, net, ipc, uts, cgroup namespaces): no network
  but a private loopback, no view of host processes; ``--unshare-user
  --disable-userns`` so code inside cannot create nested user namespaces (a
  common kernel attack surface).
- ``--cap-drop ALL``, ``--new-session`` (no TIOCSTI into the host terminal),
  ``--die-with-parent``.
- ``--clearenv`` plus an allow-list (PATH, LANG, HOME, TMPDIR,
  PYTHONDONTWRITEBYTECODE, PYTHONIOENCODING and the sandbox id marker): host
  secrets such as ``OPENAI_API_KEY`` never enter.
- Filesystem: read-only ``/usr`` and the ``/bin``, ``/lib*``, ``/sbin`` links
  as on the host; a synthetic ``/etc`` holding only ``passwd``/``group`` (root
  and nobody), ``ld.so.cache`` and ``alternatives``; ``--proc /proc``,
  ``--dev /dev``; a size-capped tmpfs ``/tmp``; the per-episode work directory
  (a host temp dir) at ``/work``, the only host directory mounted writable.
  (A call's output goes to unnamed host files whose descriptors the host
  passes in, so it survives a timeout kill without any shared path.)
- The interpreter is the system ``/usr/bin/python3`` run with ``-I``: never
  the project's venv, whose site-packages and config could hold tokens. Code
  gets the standard library and whatever Debian packages are installed.

Limits come from the shared machinery (``_process.py``): rlimits, the pids
cgroup, timeouts. Not covered: kernel exploits (no seccomp filter; bubblewrap
shares the host kernel), total disk use of ``/work`` (only per-file size is
capped), and CPU/memory pressure on the host beyond the per-process rlimits.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from palaestra.sandbox._process import ProcessSandbox, python_executable

_ETC_RO = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime")
_PASSWD = (
    "root:x:0:0:root:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _root_links() -> list[str]:
    """Mirror the host's top-level /bin, /lib*, /sbin: symlinks (merged /usr) or read-only binds."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


@functools.cache
def bwrap_problem() -> str | None:
    """None if bubblewrap can start a sandbox here, else why not (with the fix)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if not python_executable():
        return "no system python3 to run inside the sandbox (apt-get install python3)"
    cmd = [exe, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
    cmd += ["--cap-drop", "ALL", "--ro-bind", "/usr", "/usr", *_root_links(), "--proc", "/proc"]
    cmd += ["--dev", "/dev", "/bin/true"]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap failed to run: {e}"
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip()
        return f"bwrap cannot create namespaces here ({err}); unprivileged user namespaces may be disabled"
    return None


class BubblewrapSandbox(ProcessSandbox):
    """Namespaces + read-only /usr + one writable /work, via bubblewrap."""

    backend = "bubblewrap"
    workdir = "/work"

    def _wrap(self, argv: list[str]) -> list[str]:
        root = self.host_workdir.parent
        (root / "passwd").write_text(_PASSWD)
        (root / "group").write_text(_GROUP)
        cmd = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
        cmd += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
        for key, value in self._env().items():
            cmd += ["--setenv", key, value]
        cmd += ["--hostname", "sandbox", "--ro-bind", "/usr", "/usr", *_root_links()]
        cmd += ["--ro-bind", str(root / "passwd"), "/etc/passwd"]
        cmd += ["--ro-bind", str(root / "group"), "/etc/group"]
        for path in _ETC_RO:
            cmd += ["--ro-bind-try", path, path]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--size", str(self.limits.file_size_mb * 4 << 20), "--tmpfs", "/tmp"]
        cmd += ["--bind", str(self.host_workdir), self.workdir]
        # The root tmpfs bubblewrap builds is writable by default: freeze it.
        cmd += ["--remount-ro", "/", "--chdir", self.workdir, "--", *argv]
        return cmd

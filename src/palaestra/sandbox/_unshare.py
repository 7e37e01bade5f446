"""``unshare``: the second backend, for machines without bubblewrap (util-linux only).

Built from the same kernel primitives as bubblewrap, assembled by a short
shell script: ``unshare --user --map-root-user --mount --net --pid --ipc --uts
--cgroup --fork --kill-child`` creates the namespaces; inside, as root of the
new user namespace, the script builds a new root on a tmpfs (read-only
``/usr`` and the host's ``/bin``, ``/lib*`` links, a fresh ``/proc``, a
minimal ``/dev``, a size-capped ``/tmp``, the work directory at ``/work``),
remounts it read-only, sets ``max_user_namespaces`` to 0 (no nested user
namespaces), then ``chroot``s into it and drops every capability
(``setpriv --no-new-privs --inh-caps=-all --bounding-set=-all``) before
starting the interpreter with a cleared environment.

Weaker than bubblewrap, and how:

- ``chroot`` rather than ``pivot_root``: the host's mount tree still exists in
  the sandbox's mount namespace, out of reach only because the process has
  no ``CAP_SYS_CHROOT`` and holds no descriptor outside the new root (the
  driver's socket, pipe and output files are anonymous). A capability leak would be an escape here,
  where bubblewrap would still hide the host tree.
- The loopback interface of the new network namespace stays down (no
  ``ip`` in util-linux): code cannot even talk to itself over TCP.
- It needs unprivileged user namespaces (or root), like bubblewrap without
  its setuid mode; ``unshare_problem()`` reports when they are off.
- No ``--new-session``-style TIOCSTI guard of its own: the process is started
  in a new session by the host (``start_new_session``) instead.

The probe suite runs every probe against this backend too; see
``docs/sandbox.md`` for its results.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from palaestra.sandbox._process import ProcessSandbox, python_executable

# $1 new root (an empty host dir), $2 work dir, $3 /tmp size; then the command.
SETUP = r"""set -eu
R=$1; W=$2; T=$3; shift 3
P=$PATH; PATH=/usr/sbin:/usr/bin:/sbin:/bin
CHROOT=$(command -v chroot)
mount -t tmpfs -o mode=755,size=1m tmpfs "$R"
mkdir "$R/usr" "$R/proc" "$R/dev" "$R/tmp" "$R/work" "$R/etc"
mount --rbind /usr "$R/usr"
mount -o remount,bind,ro,nosuid,nodev "$R/usr" 2>/dev/null || mount -o remount,bind,ro "$R/usr"
for n in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$n" ]; then ln -s "$(readlink "/$n")" "$R/$n"
  elif [ -d "/$n" ]; then mkdir "$R/$n"; mount --rbind "/$n" "$R/$n"; mount -o remount,bind,ro "$R/$n"
  fi
done
printf 'root:x:0:0:root:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
for f in /etc/alternatives /etc/ld.so.cache /etc/localtime; do
  if [ -d "$f" ]; then mkdir "$R$f"; mount --rbind "$f" "$R$f"; mount -o remount,bind,ro "$R$f"
  elif [ -f "$f" ]; then cp "$f" "$R$f"
  fi
done
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
echo 0 >"$R/proc/sys/user/max_user_namespaces"
mount -t tmpfs -o mode=755,size=64k,nosuid tmpfs "$R/dev"
for n in null zero full random urandom tty; do
  touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"
done
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o "mode=1777,size=$T,nosuid,nodev" tmpfs "$R/tmp"
mount --bind "$W" "$R/work"
mount -o remount,bind,ro "$R"
PATH=$P exec "$CHROOT" "$R" /usr/bin/setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
"""
_NAMESPACES = [
    "--user",
    "--map-root-user",
    "--mount",
    "--net",
    "--pid",
    "--ipc",
    "--uts",
    "--cgroup",
]


@functools.cache
def unshare_problem() -> str | None:
    """None if the unshare backend can start a sandbox here, else why not (with the fix)."""
    missing = [t for t in ("unshare", "setpriv", "chroot", "mount") if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian: apt-get install util-linux coreutils mount)"
    if not python_executable():
        return "no system python3 to run inside the sandbox (apt-get install python3)"
    cmd = ["unshare", *_NAMESPACES, "--fork", "--kill-child", "--", "/bin/sh", "-c"]
    cmd += [
        "mount -t tmpfs tmpfs /tmp && mount -t proc proc /proc 2>/dev/null || mount -t tmpfs t /mnt"
    ]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare failed to run: {e}"
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip()
        return f"cannot create user and mount namespaces here ({err}); unprivileged user namespaces may be disabled"
    return None


class UnshareSandbox(ProcessSandbox):
    """Namespaces + chroot + dropped capabilities, via util-linux ``unshare``."""

    backend = "unshare"
    workdir = "/work"

    def _wrap(self, argv: list[str]) -> list[str]:
        root = self.host_workdir.parent / "root"
        root.mkdir(exist_ok=True)
        tmp_size = str(self.limits.file_size_mb * 4 << 20)
        cmd = ["unshare", *_NAMESPACES, "--fork", "--kill-child", "--", "/bin/sh", "-c", SETUP]
        return [
            *cmd,
            "sh",
            str(root),
            str(self.host_workdir),
            tmp_size,
            *argv,
        ]

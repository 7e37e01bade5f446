"""How the host touches files that sandboxed code can write: never by a path that code controls.

Code inside a sandbox can replace any name in its work directory between two
host operations: with a symlink to a host file (``/work/x -> /etc/shadow``), a
hard link, a FIFO (an ``open`` that blocks the host for ever), a huge file. The
host runs as another, often more privileged, user, so:

- A cell's output never goes through a path. The host creates an unnamed file
  (``memfd_create``) per stream and call and hands the descriptor to the
  driver over its socket (``SCM_RIGHTS``); it reads back from its own
  descriptor, capped, after the call or after killing a call that timed out.
- ``read_file``/``write_file`` open every path component relative to its
  parent with ``O_NOFOLLOW`` (race-free, unlike a realpath check followed by an
  open), the last one also ``O_NONBLOCK`` (a FIFO cannot block the open), then
  check the open file: a regular file, one link, owned by the sandbox's or the
  host's uid. A read takes at most the size ``fstat`` reported.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection
from pathlib import Path


class OutputFile:
    """An unnamed file on the host that one call's stdout or stderr goes to."""

    def __init__(self, name: str) -> None:
        self.fd = os.memfd_create(f"palaestra-{name}", os.MFD_CLOEXEC)

    def read(self, limit: int) -> tuple[str, bool]:
        """The first ``limit`` bytes, decoded, and whether there were more."""
        if self.fd < 0:
            return "", False
        size = os.fstat(self.fd).st_size
        data = os.pread(self.fd, limit, 0) if limit else b""
        return data.decode("utf-8", "replace"), size > limit

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_beneath(
    root: Path,
    parts: tuple[str, ...],
    flags: int,
    *,
    owners: Collection[int],
    make_dirs: bool = False,
    chown_to: int | None = None,
) -> int:
    """Open ``root/parts...`` without following a symlink or blocking, and check what opened.

    ``flags`` must not hold ``O_TRUNC`` (the check comes first: truncate with
    ``os.ftruncate``). ``make_dirs``: create missing parent directories, owned
    by ``chown_to`` (uid and gid) when given. Raises PermissionError for a
    symlink on the way, or a final file that is not a regular file with one
    link owned by one of ``owners``.
    """
    if flags & os.O_TRUNC:
        raise ValueError("open_beneath: truncate after the check, not with O_TRUNC")
    shown = "/".join(parts)
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts[:-1]):
            if make_dirs:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=dir_fd)
                    if chown_to is not None:
                        os.chown(part, chown_to, chown_to, dir_fd=dir_fd, follow_symlinks=False)
            try:
                nxt = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, part):
                    where = "/".join(parts[: i + 1])
                    raise PermissionError(
                        f"{shown!r} goes through a symbolic link ({where}); refused"
                    ) from None
                raise
            os.close(dir_fd)
            dir_fd = nxt
        try:
            fd = os.open(
                parts[-1],
                flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise PermissionError(f"{shown!r} is a symbolic link; refused") from None
            if e.errno == errno.ENXIO:  # a FIFO with no reader, a socket
                raise PermissionError(f"{shown!r} is not a regular file; refused") from None
            raise
    finally:
        os.close(dir_fd)
    try:
        check_file(os.fstat(fd), shown, owners)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_file(st: os.stat_result, shown: str, owners: Collection[int]) -> None:
    """Refuse anything but a regular file with one link, owned by one of ``owners``."""
    if not stat.S_ISREG(st.st_mode):
        raise PermissionError(f"{shown!r} is not a regular file; refused")
    if st.st_nlink != 1:
        raise PermissionError(f"{shown!r} has {st.st_nlink} hard links; refused")
    if st.st_uid not in owners:
        raise PermissionError(f"{shown!r} is owned by uid {st.st_uid}; refused")


def read_fd(fd: int) -> bytes:
    """Read an open regular file, at most the size it had when this started."""
    left = os.fstat(fd).st_size
    chunks: list[bytes] = []
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False

"""``unsafe-local``: the driver runs as a plain child process, with no isolation at all.

For development and tests on machines where no isolating backend works, and
as the probe suite's control group (its TCP probe *does* connect here, which
shows the probes can fail). Limits still apply (rlimits, the pids cgroup when
available, the wall-clock timeout, the cleared environment), but the code can
read and write every file the host user can, reach the network and see the
host's processes. Only reachable through ``open_sandbox("unsafe-local",
allow_unsafe=True)``, which logs a warning.
"""

from __future__ import annotations

from palaestra.sandbox._process import ProcessSandbox


class UnsafeLocalSandbox(ProcessSandbox):
    """No isolation: a child process in a temporary work directory."""

    backend = "unsafe-local"
    isolating = False

    workdir = ""  # the host temp dir, known once started

    def _wrap(self, argv: list[str]) -> list[str]:
        return argv

    def _env(self) -> dict[str, str]:
        return super()._env() | {"TMPDIR": str(self.host_scratch)}

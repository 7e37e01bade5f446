"""`make test` on a fresh machine installs the system packages its tests need (issue 14, item 19).

The README promises that `make test` passes the tests on a fresh machine; the browser
tests need Debian's chromium, which only `.ci/run` used to install. Here `make test` runs
with a PATH of fakes: no bwrap, no chromium, root, an `apt-get` that records its calls,
and a `pytest` that only says it ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
@pytest.mark.parametrize("root", [True, False], ids=["root-with-apt", "not-root"])
def test_make_test_installs_chromium_where_it_can(tmp_path: Path, root: bool) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "apt.log"
    _script(fake / "id", f"echo {0 if root else 1000}")
    _script(fake / "apt-get", f'echo "$@" >> {log}')
    _script(fake / "pytest", f"echo pytest-ran > {tmp_path / 'pytest.log'}")
    (fake / "python").touch()
    stamp = tmp_path / "installed"
    stamp.touch()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 1
    os.utime(stamp, (newer, newer))  # newer than pyproject.toml: nothing to pip install
    res = subprocess.run(
        [MAKE or "make", "-C", str(ROOT), "test", f"BIN={fake}", f"STAMP={stamp}"],
        env={"PATH": str(fake), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "pytest.log").read_text().strip() == "pytest-ran"
    calls = log.read_text().splitlines() if log.exists() else []
    if root:
        install = [c for c in calls if c.startswith("install")]
        assert install and "chromium" in install[-1] and "bubblewrap" in install[-1], calls
    else:
        assert calls == []
        assert "sudo apt-get install" in res.stdout and "chromium" in res.stdout, res.stdout

"""The separate-venv recipe: an environment with conflicting pins behind ``palaestra serve-env``.

Builds a fresh virtual environment holding palaestra with only the ``[web]``
extra (no torch) and a ``gymnasium`` our main environment does not have
(1.2, the pin nle needs, against our 1.4), serves an environment that uses
it with ``palaestra serve-env`` from that venv, and drives it from this
process through ``RemoteEnvironment`` — the recipe in docs/environments.md.
pip reaches the package registries, so this is the integration tier.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from palaestra.env import check_env
from palaestra.env.server import RemoteEnvironment

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # pip + venv: 0.5-2.5 min

REPO = Path(__file__).resolve().parents[3]
SIDE_GYMNASIUM = "gymnasium>=1.2,<1.3"

#: An environment that needs the side venv's packages (here: it reports them).
SIDE_ENV = textwrap.dedent(
    '''
    """A ToyEnv whose observations say which gymnasium and interpreter serve it."""
    import sys

    import gymnasium

    from palaestra.env._toy import ToyEnv


    class SideToy(ToyEnv):
        def _reset(self, task):
            where = f"gymnasium {gymnasium.__version__} in {sys.prefix}"
            return super()._reset(task) + f"\\n(served with {where})"
    '''
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_env_in_its_own_venv_behind_serve_env(tmp_path: Path) -> None:
    venv = tmp_path / "side-venv"
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = venv / "bin" / "pip"
    _run([str(pip), "install", "-q", "--disable-pip-version-check", f"{REPO}[web]", SIDE_GYMNASIUM])
    setup_s = time.perf_counter() - t0
    python = venv / "bin" / "python"
    # Only [web]: the training stack is not in the side venv.
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0

    (tmp_path / "side_env.py").write_text(SIDE_ENV)
    port, token = _free_port(), "side-secret"
    env_vars = {**os.environ, "PYTHONPATH": str(tmp_path), "PALAESTRA_ENV_TOKEN": token}
    env_vars.pop("VIRTUAL_ENV", None)
    server = subprocess.Popen(
        [
            str(venv / "bin" / "palaestra"),
            "serve-env",
            "--port",
            str(port),
            "--register",
            "side-toy-v1=side_env:SideToy",
        ],
        cwd=tmp_path,
        env=env_vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        t1 = time.perf_counter()
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                with urllib.request.urlopen(url + "/health", timeout=1):
                    break
            except OSError:
                assert time.perf_counter() - t1 < 60, "serve-env did not start within 60 s"
                time.sleep(0.2)
        start_s = time.perf_counter() - t1

        report = check_env(lambda: RemoteEnvironment(url, "side-toy-v1", token=token), seeds=(0, 1))
        assert report.ok

        env = RemoteEnvironment(url, "side-toy-v1", token=token)
        obs = env.reset(env.make_task(3))
        assert f"in {venv}" in obs.text and "gymnasium 1.2." in obs.text, obs.text
        while not obs.done:
            obs = env.step(env.expert())
        assert obs.info["success"] and env.progress() == 1.0
        env.close()
        print(f"side venv: created + installed in {setup_s:.1f} s; serve-env up in {start_s:.1f} s")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)

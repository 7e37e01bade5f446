"""``palaestra serve-env``: serve environments over HTTP (AgentGym-style env server)."""

from __future__ import annotations

import typer

from palaestra.cli._common import fail
from palaestra.env.server import TOKEN_ENV_VAR

ISOLATIONS = ("auto", "signal", "thread", "none")


def serve_env(
    host: str = typer.Option(
        "127.0.0.1",
        help="Interface to listen on (0.0.0.0 for all; beyond loopback needs --token or "
        "--insecure).",
    ),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    token: str | None = typer.Option(
        None,
        envvar=TOKEN_ENV_VAR,
        help="Require 'Authorization: Bearer TOKEN' on every request but /health.",
        show_default=False,
    ),
    max_envs: int = typer.Option(64, min=1, help="Live environments at once; one more gets 503."),
    idle_timeout: float = typer.Option(
        600, min=0.001, help="Close environments idle for this many seconds."
    ),
    request_timeout: float = typer.Option(
        30,
        min=0.001,
        help="Seconds one environment call may take; past it the request gets 504 and "
        "the environment is marked broken.",
    ),
    env_kwargs: list[str] = typer.Option(
        [],
        "--env-kwargs",
        help="Server-side constructor arguments of one environment id, as ID=JSON, e.g. "
        'code-v1=\'{"sandbox": "bubblewrap"}\'; repeatable. Clients cannot set these.',
    ),
    max_body_bytes: int = typer.Option(
        1 << 20, min=1, help="Longest request body accepted, in bytes; longer ones get 413."
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Allow listening beyond loopback without --token (only on a network whose every "
        "host you trust).",
    ),
    register: list[str] = typer.Option(
        [],
        "--register",
        help="Also serve ID=module:attr (e.g. toy-v1=palaestra.env._toy:ToyEnv); repeatable.",
    ),
    isolation: str = typer.Option(
        "auto",
        help="How environment calls run under --request-timeout: 'signal' (on the event "
        "loop, interrupted by SIGALRM; fastest), 'thread' (a thread per environment; also "
        "survives calls stuck in C code), 'none' (no timeout), 'auto' (signal on Unix).",
    ),
    access_log: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve the registered environments over HTTP for RemoteEnvironment clients.

    Every environment is a resource: POST /envs creates one, then
    /envs/{key}/reset, /step, /available_actions, /expert, /snapshot ... drive
    it. The API is described at /openapi.json (and browsable at /docs).

    Threat model: the server trusts its operator (these flags, --register,
    --env-kwargs) and the environment code it serves, which runs as this
    user. Clients are not trusted: they pick a registered id, tasks, actions,
    step limits and perturbations, and only the constructor arguments an
    environment declares client-settable; sandbox, allow_unsafe, URLs, paths
    and timeouts are set here with --env-kwargs. Anyone with the token can
    run episodes (for code-v1: run code in its sandbox).

    On a network: pass --token (clients send it as a bearer token; put TLS in
    front, as it travels in clear otherwise). Without one, serve-env refuses
    any address but loopback unless you pass --insecure.
    """
    if isolation not in ISOLATIONS:
        fail(f"--isolation must be one of {', '.join(ISOLATIONS)}; got {isolation!r}")
    try:
        from palaestra.env.server import serve

        serve(
            host,
            port,
            token=token,
            max_envs=max_envs,
            idle_timeout=idle_timeout,
            request_timeout=request_timeout,
            register_specs=register,
            isolation=isolation,  # pyright: ignore[reportArgumentType]
            env_kwargs=env_kwargs,
            max_body_bytes=max_body_bytes,
            insecure=insecure,
            access_log=access_log,
        )
    except ImportError as e:
        fail(str(e))
    except ValueError as e:
        fail(str(e))

"""The message for an unknown environment id: its closest registered ids, not all of them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How many close matches an unknown-id message names at most.
MAX_SUGGESTIONS = 3


def close_env_ids(env_id: str, known: Iterable[str], n: int = MAX_SUGGESTIONS) -> list[str]:
    """Registered ids that ``env_id`` was probably meant to be, best first.

    Other versions of the same family come first (``shop-v9`` → ``shop-v1``), then
    difflib's close matches of the family name, with and without its namespace
    (``goto-v1`` → ``babyai/goto-v1``, ``hose`` → ``house-v1``). Names are compared
    without their ``-vN``, which every id shares and which would make all ids look alike.
    """
    by_family: dict[str, list[str]] = {}
    by_bare: dict[str, list[str]] = {}
    for k in sorted(set(known)):
        by_family.setdefault(_family(k), []).append(k)
        by_bare.setdefault(_family(k).rsplit("/", 1)[-1], []).append(k)
    family = _family(env_id)
    found = list(by_family.get(family, []))
    for match in difflib.get_close_matches(family, list(by_family), n=n, cutoff=0.6):
        found += by_family[match]
    for match in difflib.get_close_matches(
        family.rsplit("/", 1)[-1], list(by_bare), n=n, cutoff=0.6
    ):
        found += by_bare[match]
    return list(dict.fromkeys(k for k in found if k != env_id))[:n]


def _family(env_id: str) -> str:
    name, sep, version = env_id.rpartition("-v")
    return name if sep and version.isdigit() else env_id


def unknown_env_message(env_id: str, known: Iterable[str], what: str = "no environment") -> str:
    """``no environment 'shop-v9'; did you mean shop-v1? See `palaestra envs list` ...``"""
    close = close_env_ids(env_id, known)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    return f"{what} {env_id!r}{hint} See `palaestra envs list` for all registered ids."

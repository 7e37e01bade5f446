"""``RunStore.annotate``: metadata added to stored episodes, nothing else changed, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from palaestra.env import ToyEnv
from palaestra.trajectory import Episode, RunStore, Step


def _episode(seed: int, attempt: int = 0) -> Episode:
    return Episode(
        run_id="r",
        task=ToyEnv().make_task(seed),
        attempt=attempt,
        agent="react",
        model_id="scripted",
        outcome="failure",
        steps=[Step(index=0, action="inc", observation="You are at 1.")],
        metadata={"rl_step": seed},
    )


def test_annotate_sets_metadata_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        for seed in range(3):
            store.add(_episode(seed))
        before = {e.episode_id: e for e in store.episodes()}
        ids = list(before)
        assert store.annotate([ids[1], ids[2], ids[2], "missing#0"], {"rl_discarded": True}) == 2
        after = list(store.episodes())
    assert [e.episode_id for e in after] == ids  # order unchanged
    for e in after:
        old = before[e.episode_id]
        marked = e.episode_id in ids[1:]
        assert e.metadata == ({**old.metadata, "rl_discarded": True} if marked else old.metadata)
        assert e.model_copy(update={"metadata": old.metadata}) == old


def test_an_annotated_episode_is_still_written_once(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.add(_episode(0))
        store.annotate([_episode(0).episode_id], {"note": 1})
        assert not store.add(_episode(0))  # same id: still a no-op
        (stored,) = store.episodes()
    assert stored.metadata == {"rl_step": 0, "note": 1}


def test_annotate_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import palaestra.trajectory._store as store_module

    with RunStore(tmp_path) as store:
        store.add(_episode(0))
        store.add(_episode(1))
        ids = [e.episode_id for e in store.episodes()]
        read = store_module.Episode.model_validate_json
        calls = 0

        def crash_on_second(body: str) -> Episode:
            nonlocal calls
            calls += 1
            if calls == 2:  # the first episode is already updated inside the transaction
                raise KeyboardInterrupt
            return read(body)

        monkeypatch.setattr(store_module.Episode, "model_validate_json", crash_on_second)
        with pytest.raises(KeyboardInterrupt):
            store.annotate(ids, {"ok": 1})
        monkeypatch.undo()
        assert calls == 2 and all("ok" not in e.metadata for e in store.episodes())

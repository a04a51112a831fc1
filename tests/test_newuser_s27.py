"""A new user's first hour (session 27): README.md and docs/ read in order and done as they say, the examples
copied into scripts, beginner mistakes made on purpose; what broke a promise of the docs."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
import threading
from pathlib import Path

import pytest

import musicstore
from musicstore import AsyncStore, MigrationError, Store, migrate, ops
from musicstore.urls import sqlite_url


def _absent(path: Path) -> None:
    """Nothing at ``path``: no database file, no WAL files, no folder made for it."""
    made = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.parent) if p.exists()]
    assert not made, f"made {made}"


@pytest.mark.parametrize(
    "spelling", ["async with AsyncStore(url)", "AsyncStore(url)", "claim_next(wait=...)", "its folder there"]
)
def test_an_async_store_on_a_mistyped_sqlite_path_creates_no_empty_database(
    tmp_path: Path, spelling: str
) -> None:
    """docs/usage.md: a SQLite file that does not exist is refused (``MigrationError``, creating nothing: a
    mistyped path leaves no empty database behind), and ``AsyncStore`` has every operation of ``Store`` with
    the same errors. ``async with AsyncStore(url)`` (as ``with Store(url)``) and a bare ``AsyncStore(url)``
    skip ``open()``'s check; their first operation made the folders and an empty database file at the typo,
    then failed on its schema ('no such table: prompts'), and the sync ``Store`` then named a missing
    ``_yoyo_migration`` table instead of the missing file."""
    path = tmp_path / "typo" / "generations.db"
    url = sqlite_url(path)

    if spelling == "its folder there":  # the typo is in the file's name
        path.parent.mkdir()

    async def main() -> None:
        if spelling.startswith("async with"):
            async with AsyncStore(url) as store:
                await store.count_generations()
        elif spelling != "AsyncStore(url)":  # a wait starts the poller's connection before its first try
            async with AsyncStore(url) as store:
                await store.claim_next("gpu-0", wait=0.2)
        else:
            store = AsyncStore(url)
            try:
                await store.create_generation("x", model_name="m", duration_seconds=1)
            finally:
                await store.close()

    with pytest.raises(MigrationError, match="no database at"):
        asyncio.run(main())
    if spelling == "its folder there":
        path.parent.rmdir()  # empty: no database file, no WAL files
    _absent(path)
    with pytest.raises(MigrationError, match="no database at"):
        Store(url)
    _absent(path)


def test_a_store_whose_database_was_removed_does_not_make_an_empty_one(tmp_path: Path) -> None:
    """A ``Store`` open while its database is removed (``rm -rf data`` to start over, a worker still
    running): a thread's first operation opened a new connection, which made the folder and an empty
    database there (a second, empty store beside the deleted one, every later ``Store(url)`` refused it for
    its schema). It is ``MigrationError`` naming the missing file, as ``Store(url)`` says, and nothing is
    made."""
    path = tmp_path / "data" / "generations.db"
    url = sqlite_url(path)
    migrate(url)
    with Store(url) as store:
        store.create_generation("x", model_name="m", duration_seconds=1)
        for leftover in sorted(path.parent.iterdir()):
            leftover.unlink()
        path.parent.rmdir()
        raised: list[BaseException] = []

        def other_thread() -> None:
            try:
                store.count_generations()
            except BaseException as exc:  # handed to the test's thread
                raised.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(raised) == 1 and isinstance(raised[0], MigrationError), raised
        assert "no database at" in str(raised[0])
        _absent(path)


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def _of(name: str) -> list[str]:
    """The parameters of the operation ``name`` (``musicstore.ops``), as its code declares them."""
    return list(inspect.signature(getattr(ops, name).steps).parameters)


def test_the_store_methods_show_their_parameters_to_help_and_inspect(tmp_path: Path) -> None:
    """``help(store.create_generation)`` (and ``inspect.signature``, which IDEs, Jupyter's ``?`` and pydoc
    read) showed ``create_generation(*args: 'P.args', **kwargs: 'P.kwargs') -> 'T'``: a new user in a REPL
    could not see which arguments an operation takes, on ``Store``, ``AsyncStore``, a transaction, the class,
    nor the 0.1 functions taking a session first. Each shows its operation's parameters now."""
    url = sqlite_url(tmp_path / "jobs.db")
    assert _of("create_generation")[:4] == ["prompt", "model_name", "duration_seconds", "sample_rate"]
    with Store(url, migrate=True) as store:
        assert _parameters(store.create_generation) == _of("create_generation")  # a direct write
        assert _parameters(store.get_generation) == ["generation_id"]  # a direct read
        assert _parameters(store.fail) == _of("fail")
        assert _parameters(Store.create_generation) == ["runner", *_of("create_generation")]
        assert _parameters(musicstore.create_generation) == ["runner", *_of("create_generation")]
        with store.transaction() as tx:
            assert _parameters(tx.complete_generation) == _of("complete_generation")
        text = pydoc.render_doc(store.create_generation, renderer=pydoc.TextDoc())
        assert "model_name" in text and "P.args" not in text

    async def main() -> None:
        async with AsyncStore.open(url) as astore:
            assert _parameters(astore.create_generation) == _of("create_generation")
            assert _parameters(astore.list_generations) == _of("list_generations")
            async with astore.transaction() as atx:
                assert _parameters(atx.cancel) == ["generation_id", "reason"]

    asyncio.run(main())

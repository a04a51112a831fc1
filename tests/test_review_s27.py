"""The review of session 27's change: each bug with the test that failed before its fix."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from musicstore import AsyncStore, Store
from musicstore.aio import AsyncTransaction
from musicstore.errors import DatabaseError


@pytest.mark.parametrize("damaged", ["[]", '""', '[["a", 1]]', '["ab"]', '{"a": ' + "[" * 100_000 + "}"])
def test_metadata_that_is_json_but_no_object_is_a_database_error(tmp_path: Path, damaged: str) -> None:
    """A damaged row's metadata that is JSON but no object (an array, a string) was read as a dict made of it
    (``dict([])`` is ``{}``, ``dict([["a", 1]])`` is ``{"a": 1}``) where the promise is ``DatabaseError``
    'not a JSON object'; one nested past the parser's depth raised a bare ``RecursionError``."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url, migrate=True) as store:
        generation = store.create_generation("p", model_name="m", duration_seconds=1, metadata={"a": 1})
    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE generations SET metadata = ? WHERE id = ?", (damaged, generation.id))
        conn.commit()
    with Store(url) as store, pytest.raises(DatabaseError, match=r"not a JSON object.*damaged"):
        store.get_generation(generation.id)


def test_transactions_of_dropped_async_generators_are_not_kept_by_the_task(tmp_path: Path) -> None:
    """A transaction ended in another task (an async generator dropped inside ``store.transaction()``,
    finalized by its loop: 052fb1d) stayed in the opening task's list of open transactions, one more per
    generator dropped: each kept alive with its store and connection for the task's life, and each direct
    read of that task scanned them all. Now one opened later takes the ended ones out."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Store(url, migrate=True).close()

    async def main() -> int:
        kept: list[weakref.ref[AsyncTransaction]] = []
        async with AsyncStore.open(url) as store:

            async def rows() -> AsyncIterator[int]:
                async with store.transaction(write=False) as tx:
                    kept.append(weakref.ref(tx))
                    yield 1
                    yield 2

            for _ in range(5):
                async for _ in rows():
                    break
                gc.collect()  # finalized: the loop runs its aclose() in a task of its own
                deadline = asyncio.get_running_loop().time() + 30.0
                while store._connector._taken:  # until that aclose() (its rollback on the thread) ended
                    assert asyncio.get_running_loop().time() < deadline, "the dropped generator never closed"
                    await asyncio.sleep(0.01)
            assert await store.count_generations() == 0
            gc.collect()
            return sum(ref() is not None for ref in kept)

    assert asyncio.run(main()) <= 1

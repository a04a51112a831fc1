"""Session 28's review: what it found in the session's changes, pinned."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import sys
from pathlib import Path

import pytest

from musicstore import AsyncStore
from musicstore.audio import files
from musicstore.errors import StorageError


def test_a_temp_file_whose_close_fails_is_removed_and_its_descriptor_closed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``files.stage``: an ``os.close`` of the temp file that raised (EIO: the descriptor is released all the
    same) was followed by a second ``os.close`` of that number in the cleanup: EBADF raised from there, as a
    plain OSError, the temp file left behind (and, in a batch's threads, the number may be another file's by
    then: closed under it). Now the error is the StorageError of any failed write and the temp file goes."""
    real_close = os.close
    closed: list[int] = []

    def failing_close(fd: int) -> None:
        real_close(fd)
        closed.append(fd)
        if len(closed) == 1:
            raise OSError(errno.EIO, "Input/output error")

    def write(fd: int, name: str) -> None:
        os.write(fd, b"abc")
        monkeypatch.setattr(os, "close", failing_close)

    target = tmp_path / "out.wav"
    with pytest.raises(StorageError):
        files.stage(target, write)
    monkeypatch.undo()
    assert len(closed) == 1  # closed once, not again by the cleanup
    assert list(tmp_path.iterdir()) == []


def test_an_async_store_whose_first_loop_was_closed_without_asyncio_run_closes_in_another(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/async.md: ``close()`` awaited in another loop closes the store's connections without the store's
    own. Its pool's watcher (``_watch_pool``, a task of the first loop) was cancelled from the second: with
    the first loop closed without cancelling its tasks (``loop.close()``, not ``asyncio.run``), cancelling it
    raised RuntimeError('Event loop is closed') out of ``close()``, after it had let go of the pool: its
    connections were never closed."""
    first = asyncio.new_event_loop()
    store = AsyncStore(postgres_url)
    try:
        assert first.run_until_complete(store.count_generations()) >= 0
    finally:
        first.close()  # its tasks (the pool's workers, the watcher) left pending
    pool = store._connector._pool
    assert pool is not None
    asyncio.run(store.close())  # raised RuntimeError
    assert store._connector.closed
    assert pool._closed
    assert not pool._pool  # its idle connections closed (_close_abandoned)
    # the closed loop's pending tasks (the pool's workers) complain as they are collected: here, quietly
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    del pool, store, first
    gc.collect()

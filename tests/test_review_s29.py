"""Review of session 29's library changes: each bug found, pinned by a test that failed before its fix."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest


def test_copy_files_heads_its_copies_under_the_row_lock_one_short_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/storage.md: copy_files HEADs each copy of a row once its UPDATE holds the row's lock ("SQLite's
    writer lock is held for a few requests at most"). The HEAD (``dry_target.copies_there``) went through
    the target's own client: 4 attempts, each waiting READ_TIMEOUT_SECONDS (60 s) on an endpoint that takes
    connections and never answers, about 4 minutes with the row locked (on SQLite the database's write
    lock: every worker's claim and completion waiting past its busy_timeout), the lock 702b34f keeps short
    for an export's cleanup (``base.briefly``). Now one attempt with the short timeouts."""
    from musicstore.errors import StorageError
    from musicstore.maintenance import dry_target
    from tests.silent_s3 import silent_s3_files

    with silent_s3_files(monkeypatch) as (files, accepted):
        started = time.monotonic()
        try:
            with pytest.raises(StorageError):
                dry_target.copies_there(files, {"g": ["a/g.wav"]}, "g")
        finally:
            elapsed = time.monotonic() - started
    assert len(accepted) == 1, accepted  # one HEAD attempt, not 4
    assert elapsed < 15, elapsed  # one 3 s wait (the 4 took 12 s and more, with their backoff)


def test_an_orphan_repair_waits_for_a_render_beside_a_master_named_by_hand(
    musicstore_postgres_store: Any, tmp_path: Path
) -> None:
    """docs/maintenance.md: the repair of an orphan named after a generation first locks that generation
    (``orphan_claimed``), the lock a render holds from before its put to its commit, so that a rendition
    put and not yet recorded is not removed. A rendition beside a master named by hand (``album/Take
    1.wav``: ``Take 1.streaming.<8 hex>.mp3``, an orphan by its name since c67a4ca; ``t.wav``'s before)
    carries the master's stem, not an id: the repair locked a generation of id ``Take 1`` (none), and on
    PostgreSQL (row locks) removed the object of a render still in its transaction, whose row then
    recorded a rendition with no file. It now locks the generations recording that master."""
    from musicstore.filestore import LocalFileStore
    from musicstore.maintenance import row_checks
    from musicstore.ops import Call, Steps, writer
    from musicstore.ops.storage import record_storage

    store = musicstore_postgres_store
    where = LocalFileStore(tmp_path / "audio")
    store.create_generation("take", model_name="m", duration_seconds=1)
    job = store.claim_next("w")
    assert job is not None
    saved = where.put("album/Take 1.wav", b"RIFF a master named by hand")
    store.complete_generation(job.id, file_path="album/Take 1.wav", file_size_bytes=saved.size)
    assert saved.checksum is not None
    store.run(record_storage, job.id, storage_url=where.url, key=saved.key, checksum=saved.checksum)
    rendition = "album/Take 1.streaming.0123abcd.mp3"
    where.put(rendition, b"a render's object, its row not committed yet")

    @writer
    def lock(gid: str) -> Steps[None]:  # as render_generation's lock_for_rendition holds it
        yield Call("get_generation_for_update", {"id": gid})

    held, release = threading.Event(), threading.Event()

    def render() -> None:
        with store.transaction() as tx:
            tx.run(lock, job.id)
            held.set()
            release.wait(30)

    renderer = threading.Thread(target=render)
    renderer.start()
    assert held.wait(30)
    removed: list[float] = []
    errors: list[str] = []

    def repair() -> None:
        removed.append(time.monotonic())

    released = 0.0
    reconciler = threading.Thread(
        target=row_checks._repair_unless_recorded,
        args=(store, repair),
        kwargs={"url": None, "key": rendition, "errors": errors},
    )
    try:
        reconciler.start()
        time.sleep(1.5)
        released = time.monotonic()
    finally:
        release.set()
        renderer.join(30)
        reconciler.join(30)
    assert removed and removed[0] >= released, (removed, released)  # only once the render's lock went
    assert errors == []

"""Regressions found by a black-box hunt over delivery and storage: file stores, renditions, URLs,
retention, reconcile, backup and the maintenance that moves files."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.aio import AsyncStore
from musicstore.audio import synthesize_music
from musicstore.delivery import AsyncDelivery, Delivery
from musicstore.filestore import AsyncFileStore, FileStore, StoreUnavailable, open_filestore
from musicstore.maintenance.backup import backup, restore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.recording import export_generation
from musicstore.rendering import render_generation, render_peaks
from tests.conftest import new_job
from tests.test_maintenance_s3 import in_bucket, keys, rendition

GID = "0190a1b2-0000-7000-8000-000000000001"


def test_cleanup_stops_at_a_bucket_it_cannot_use(
    store: Store, objects: FileStore, musicstore_s3_url: str, musicstore_s3_server: Any
) -> None:
    """Wrong credentials (or a missing bucket) stop a bucket's cleanup with one ``StoreUnavailable``, as
    they stop ``copy_files``, and nothing is deleted: it skipped every row ("cannot look at ...: access
    denied"), reported "0 generations" and the CLI exited 0, the retention having done nothing."""
    done = in_bucket(store, objects)
    kept = rendition(store, objects, done)
    options = {**musicstore_s3_server.options, "secret_access_key": "wrong"}
    denied = open_filestore(musicstore_s3_url, **options)
    try:
        with pytest.raises(StoreUnavailable, match="access denied") as raised:
            cleanup(store, denied, statuses=["completed"], dry_run=False)
    finally:
        denied.close()
    assert "wrong" not in str(raised.value)
    found = store.get_generation(done.id)
    assert found is not None and found.status is Status.COMPLETED
    assert kept in keys(objects) and len(store.list_renditions(done.id)) == 1


def test_an_async_file_store_is_refused_where_a_file_store_is_taken(store: Store, tmp_path: Path) -> None:
    """An ``AsyncFileStore`` has every member of the ``FileStore`` protocol (as coroutines), so
    ``isinstance`` took it for one: ``export_generation(root=AsyncFileStore(...))`` exported, then failed
    with "AttributeError: 'coroutine' object has no attribute 'checksum'", the row left processing and
    reconcile raised a TypeError. It is refused before any work now, with ``InvalidInput``."""
    files = open_filestore(tmp_path / "audio")
    wrapped = AsyncFileStore(files)
    assert isinstance(files, FileStore) and not isinstance(wrapped, FileStore)
    job = new_job(store, duration_seconds=1.0)
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == job.id
    with pytest.raises(InvalidInput, match="AsyncFileStore"):
        export_generation(store, claimed, synthesize_music(1.0, claimed.sample_rate), root=wrapped)  # type: ignore[arg-type]
    assert list(files.list()) == [] and list(files.uploads()) == []
    found = store.get_generation(job.id)
    assert found is not None and found.status is Status.PROCESSING and found.attempts == 1
    with pytest.raises(InvalidInput):
        reconcile(store, wrapped)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda store, root: Delivery(store, root=root).url_for(GID),
        lambda store, root: render_generation(store, GID, root=root),
        lambda store, root: render_peaks(store, GID, root=root),
        reconcile,
        lambda store, root: copy_files(store, root / "elsewhere"),
    ],
    ids=["Delivery", "render_generation", "render_peaks", "reconcile", "copy_files"],
)
def test_a_sync_call_refuses_an_async_store_or_none(
    call: Callable[[Any, Path], object], sqlite_url: str, tmp_path: Path
) -> None:
    """An ``AsyncStore`` (or None) given where a ``Store`` is taken raises ``InvalidInput`` naming it:
    these raised "AttributeError: 'coroutine' object has no attribute 'status'" (or "'NoneType' object has
    no attribute 'run'"), cleanup and disk_usage already refused it."""
    (tmp_path / "audio").mkdir()

    async def with_async_store() -> None:
        opened = await AsyncStore.open(sqlite_url)
        try:
            with pytest.raises(InvalidInput, match="got AsyncStore; open a Store"):
                call(opened, tmp_path / "audio")
        finally:
            await opened.close()

    asyncio.run(with_async_store())
    with pytest.raises(InvalidInput, match="got NoneType"):
        call(None, tmp_path / "audio")


def test_async_delivery_refuses_a_sync_store(sqlite_url: str) -> None:
    """``AsyncDelivery(store)`` with a ``Store`` raised "TypeError: object StoredFile can't be used in
    'await' expression" at its first call; it is refused where it is made."""
    with Store(sqlite_url) as store, pytest.raises(InvalidInput, match="for a Store use Delivery"):
        AsyncDelivery(store)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", [Path("generations.db"), 5, b"sqlite:///x.db"], ids=["Path", "int", "bytes"])
def test_backup_and_restore_refuse_a_database_url_that_is_not_a_str(
    url: object, sqlite_url: str, tmp_path: Path
) -> None:
    """``backup(Path("x.db"), ...)`` (a path given where the URL goes, or a ``Store``) raised "TypeError:
    expected string or bytes-like object"; like ``Store`` and ``migrate`` they raise ``InvalidInput``."""
    made = backup(sqlite_url, tmp_path / "copy.db")
    with pytest.raises(InvalidInput, match="database URL must be a str"):
        backup(url, tmp_path / "other.db")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="database URL must be a str"):
        restore(made.destination, url, overwrite=True)  # type: ignore[arg-type]
    assert not (tmp_path / "other.db").exists()


@pytest.mark.parametrize("page_size", [0, -1, True, 2.0])
def test_a_bad_page_size_is_refused_alike_sync_and_async_on_both_backends(
    where: FileStore, page_size: object
) -> None:
    """``list(page_size=...)`` is checked at the call on both backends: the folder's was checked only once
    iterated, so ``AsyncFileStore.list(page_size=0)`` listed nothing without a word and ``page_size=-1``
    raised islice's bare ValueError (the bucket's raised ``InvalidInput``); the message named chunk_size."""
    where.put("2026/01/31/abc.wav", b"RIFF")
    with pytest.raises(InvalidInput, match="page_size="):
        where.list("", page_size=page_size)  # type: ignore[arg-type]

    async def pages() -> list[str]:
        return [o.key async for o in AsyncFileStore(where).list("", page_size=page_size)]  # type: ignore[arg-type]

    with pytest.raises(InvalidInput, match="page_size="):
        asyncio.run(pages())
    assert [o.key for o in where.list("", page_size=1)] == ["2026/01/31/abc.wav"]


@pytest.mark.parametrize("damage", ["size_mismatch", "checksum_mismatch"])
def test_a_repair_takes_a_damaged_rendition_away_with_its_row_on_both_backends(
    store: Store, where: FileStore, damage: str
) -> None:
    """A rendition whose file is damaged (another size, or other bytes with ``verify_checksums``) loses its
    row on repair, and its file goes in the same run, as an orphan: a folder's walk found it so, but a
    bucket's repair left the object at the rendition's key (reported an orphan only by the next run), so
    ``render_generation`` of the same request, which the docs promise can make it again, failed with
    ``ObjectExists``."""
    done = in_bucket(store, where)
    key = rendition(store, where, done, data=b"ID3" + b"\2" * 50)
    where.put(key, b"ID3" + b"\3" * (50 if damage == "checksum_mismatch" else 60), overwrite=True)
    options: dict[str, Any] = {"delete_orphans": True, "verify_checksums": True}
    report = reconcile(store, where, repair=True, **options)
    assert [(r.problem, r.action) for r in report.dangling_renditions] == [(damage, "deleted_row")]
    assert [(o.path, o.action) for o in report.orphans] == [(key, "deleted")]
    assert report.orphan_count == 1 and store.list_renditions(done.id) == []
    assert key not in keys(where)
    assert reconcile(store, where, verify_checksums=True).consistent
    rendition(store, where, done)  # made again: the key is free

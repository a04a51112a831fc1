"""Regressions found by a black-box hunt over delivery and storage: file stores, renditions, URLs,
retention, reconcile, backup and the maintenance that moves files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.audio import synthesize_music
from musicstore.filestore import AsyncFileStore, FileStore, StoreUnavailable, open_filestore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.recording import export_generation
from tests.conftest import new_job
from tests.test_maintenance_s3 import in_bucket, keys, rendition


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

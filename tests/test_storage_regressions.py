"""Regressions found by a black-box hunt over delivery and storage: file stores, renditions, URLs,
retention, reconcile, backup and the maintenance that moves files."""

from __future__ import annotations

from typing import Any

import pytest

from musicstore import Status, Store
from musicstore.filestore import FileStore, StoreUnavailable, open_filestore
from musicstore.maintenance.retention import cleanup
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

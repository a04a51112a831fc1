"""End-to-end hunt (session 24): generations through a service of several hosts sharing a bucket and a
database, with maintenance running beside them; each test is a broken promise found that way."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from musicstore import Status, Store
from musicstore.audio import synthesize_music
from musicstore.filestore import FileStore, StoreUnavailable
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.ops.storage import get_storage, record_storage
from musicstore.recording import Recorded, export_generation
from tests.conftest import new_job


def _recorded(store: Store, objects: FileStore) -> Recorded:
    """A generation exported into the bucket as a worker does (master and its recorded peaks file)."""
    job = new_job(store, duration_seconds=1.0)
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == job.id
    recorded = export_generation(store, claimed, synthesize_music(1.0, claimed.sample_rate), root=objects)
    assert recorded.peaks is not None  # the export's default: a peaks record in the row
    return recorded


def _bucket_gone(store: Store, recorded: Recorded, secret: str) -> str:
    """The row pointed at a bucket that is not there (deleted, or another server's endpoint without it):
    the store a host finds when the bucket vanished."""
    gone = f"s3://musicstore-gone-{uuid.uuid4().hex[:12]}/music/"
    assert recorded.key is not None and recorded.checksum is not None
    store.run(
        record_storage, recorded.generation.id, storage_url=gone, key=recorded.key, checksum=recorded.checksum
    )
    assert secret not in gone
    return gone


def test_copy_files_from_a_bucket_that_is_gone_stops_the_run(
    store: Store, objects: FileStore, tmp_path: Path, musicstore_s3_server: object
) -> None:
    """``copy_files`` out of a bucket that is not there must stop at once with ``StoreUnavailable``, as
    docs/storage.md promises for a missing bucket at the source. With the export's default peaks record,
    the recorded peaks file was looked at first with a HEAD (whose 404 does not say the bucket is missing):
    each row was skipped one by one as "its recorded peaks file ... is not in s3://...; render_peaks puts it
    back" (a repair that cannot work), and the run reported success."""
    recorded = _recorded(store, objects)
    gone = _bucket_gone(store, recorded, musicstore_s3_server.secret_access_key)  # type: ignore[attr-defined]
    for dry_run in (True, False):
        with pytest.raises(StoreUnavailable, match="does not exist") as raised:
            copy_files(store, tmp_path / "moved", dry_run=dry_run)
        assert musicstore_s3_server.secret_access_key not in str(raised.value)  # type: ignore[attr-defined]
    assert store.run(get_storage, recorded.generation.id).storage_url == gone  # the row did not move
    assert not list((tmp_path / "moved").rglob("*.*"))


def test_cleanup_of_a_bucket_that_is_gone_deletes_no_row(
    store: Store, objects: FileStore, musicstore_s3_server: object
) -> None:
    """A bucket that is not there stops a bucket's cleanup before its rows are deleted (docs/storage.md,
    "A bucket it cannot use (StoreUnavailable) stops it"): its HEADs said each object missing, so cleanup
    deleted every candidate row and reported their files "missing", 0 bytes freed; if the bucket was only
    out of reach (another endpoint, a filer restarting), its objects stayed behind as orphans."""
    recorded = _recorded(store, objects)
    gone = _bucket_gone(store, recorded, musicstore_s3_server.secret_access_key)  # type: ignore[attr-defined]
    for dry_run in (True, False):
        with pytest.raises(StoreUnavailable, match="does not exist"):
            cleanup(store, gone, statuses=["completed"], dry_run=dry_run)
    found = store.get_generation(recorded.generation.id)
    assert found is not None and found.status is Status.COMPLETED


def test_a_dry_run_of_copy_files_to_a_bucket_that_is_gone_says_so(
    store: Store, objects: FileStore, musicstore_s3_server: object
) -> None:
    """``copy_files --dry-run`` reports what the run would do (docs/storage.md), and a missing bucket at the
    target stops the run at its first put with ``StoreUnavailable``. The dry run only asks its target
    ``HEAD``s, whose 404 does not say the bucket is missing: it reported every object as one it would copy,
    where the run copies none. It raises as the run does now (one listing of the target); nothing moves."""
    recorded = _recorded(store, objects)
    gone = f"s3://musicstore-gone-{uuid.uuid4().hex[:12]}/music/"
    with pytest.raises(StoreUnavailable, match="does not exist") as raised:
        copy_files(store, gone, dry_run=True)
    assert musicstore_s3_server.secret_access_key not in str(raised.value)  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable, match="does not exist"):
        copy_files(store, gone)
    assert store.run(get_storage, recorded.generation.id).storage_url == objects.url
    assert copy_files(store, objects, dry_run=True).skipped_count == 0  # a bucket that is there: as before

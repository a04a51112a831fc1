"""Maintenance over an object store (a real SeaweedFS): reconcile, cleanup and storage statistics of
``s3://`` roots, on both database backends, renditions included; objects outside the prefix untouched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, InvalidInput, Status, Store
from musicstore.filestore import FileStore, ObjectInfo
from musicstore.maintenance.bucket import StoredRow, join
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.usage import disk_usage
from musicstore.ops.storage import record_storage
from tests.conftest import FakeClock, new_job
from tests.wrapped_stores import Wrapped

RENDITION: dict[str, Any] = {
    "settings": {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_mode": "constant",
                 "bitrate_kbps": 192},
    "profile": "streaming", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "duration_seconds": 1.0,
    "loudness_lufs": -14.0, "true_peak_dbtp": -1.5, "loudness_status": "normalized",
}  # fmt: skip


DATA = b"RIFF" + b"\1" * 96


def in_bucket(store: Store, objects: FileStore, data: bytes = DATA, key: str | None = None) -> Generation:
    """A completed generation whose file is an object at its layout key, recorded as recording does."""
    job = new_job(store)
    claimed = store.claim_next("worker-1")
    assert claimed is not None and claimed.id == job.id
    key = key or f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
    info = objects.put(key, data)  # the same bytes at a key already there: returns that object
    done: Generation = store.complete_generation(job.id, file_path=key, file_size_bytes=len(data))
    assert info.checksum is not None
    store.run(record_storage, job.id, storage_url=objects.url, key=key, checksum=info.checksum)
    return done


def rendition(store: Store, objects: FileStore, done: Generation, data: bytes = b"ID3" + b"\2" * 50) -> str:
    key = f"{done.created_at:%Y/%m/%d}/{done.id}.streaming.0123abcd.mp3"
    objects.put(key, data)
    store.create_rendition(
        done.id, storage_key=key, file_size_bytes=len(data), checksum=hashlib.sha256(data).hexdigest(),
        **RENDITION,
    )  # fmt: skip
    return key


def status(store: Store, gid: str) -> Status:
    found = store.get_generation(gid)
    assert found is not None
    return found.status


def keys(objects: FileStore) -> set[str]:
    return {o.key for o in objects.list()}


def test_join_merges_two_ordered_streams() -> None:
    objects = [ObjectInfo(k, 1) for k in ("a", "c", "d")]
    rows = [StoredRow(k, k, k, "completed", 1, None) for k in ("b", "c", "c", "e")]
    joined = [(key, obj is not None, len(found)) for key, obj, found in join(objects, rows)]
    assert joined == [("a", True, 0), ("b", False, 1), ("c", True, 2), ("d", True, 0), ("e", False, 1)]


def test_a_consistent_bucket_is_clean(store: Store, objects: FileStore, musicstore_s3_url: str) -> None:
    done = [in_bucket(store, objects) for _ in range(3)]
    rendition(store, objects, done[0])
    new_job(store)  # pending, no file
    report = reconcile(store, musicstore_s3_url, verify_checksums=True)
    assert report.consistent, asdict(report)
    assert (report.rows_checked, report.files_scanned, report.referenced_files) == (3, 4, 4)
    assert (report.renditions_checked, report.checksums_verified) == (1, 4)
    assert report.root == objects.url
    json.dumps(asdict(report))


@pytest.fixture
def messy(
    store: Store, objects: FileStore, musicstore_s3_server: Any, musicstore_s3_url: str
) -> dict[str, Any]:
    """A bucket with every kind of disagreement, and an object outside the prefix."""
    fine = in_bucket(store, objects)
    lost = in_bucket(store, objects)
    objects.delete(f"{lost.created_at:%Y/%m/%d}/{lost.id}.wav")
    resized = in_bucket(store, objects)
    resized_key = f"{resized.created_at:%Y/%m/%d}/{resized.id}.wav"
    objects.put(resized_key, b"short", overwrite=True)
    damaged = in_bucket(store, objects)
    damaged_key = f"{damaged.created_at:%Y/%m/%d}/{damaged.id}.wav"
    objects.put(damaged_key, b"RIFF" + b"\7" * 96, overwrite=True)  # same size, other bytes
    lost_rendition = rendition(store, objects, fine)
    objects.delete(lost_rendition)
    orphan = "2026/01/01/0190a1b2-0000-7000-8000-000000000001.wav"
    objects.put(orphan, b"orphan!")
    other = "notes/readme.txt"
    objects.put(other, b"not audio")
    pending = new_job(store)  # an object a worker put and has not committed yet
    in_progress = f"{pending.created_at:%Y/%m/%d}/{pending.id}.wav"
    objects.put(in_progress, b"RIFFinflight")
    # a multipart upload begun and abandoned (old enough with stale_after_seconds=0)
    client = musicstore_s3_server.client()
    bucket, _, prefix = musicstore_s3_url.removeprefix("s3://").partition("/")
    client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}2026/01/02/abandoned.wav")
    # outside the prefix: a sibling prefix sharing its beginning
    outside = f"{prefix.rstrip('/')}-old/2026/01/01/{fine.id}.wav"
    client.put_object(Bucket=bucket, Key=outside, Body=b"outside")
    return {
        "fine": fine, "lost": lost, "resized": resized, "damaged": damaged, "orphan": orphan, "other": other,
        "in_progress": in_progress, "lost_rendition": lost_rendition, "client": client, "bucket": bucket,
        "outside": outside,
    }  # fmt: skip


def test_reconcile_reports_every_kind_and_changes_nothing(
    store: Store, objects: FileStore, messy: dict[str, Any], musicstore_s3_url: str
) -> None:
    before = keys(objects)
    report = reconcile(store, musicstore_s3_url, stale_after_seconds=0, verify_checksums=True)
    assert not report.consistent
    assert [o.path for o in report.orphans] == [messy["orphan"]] and report.orphan_bytes == 7
    problems = {d.id: d.problem for d in report.dangling}
    assert problems == {
        messy["lost"].id: "missing",
        messy["resized"].id: "size_mismatch",
        messy["damaged"].id: "checksum_mismatch",
    }
    assert [(d.file_path, d.problem) for d in report.dangling_renditions] == [
        (messy["lost_rendition"], "missing")
    ]
    assert (report.in_progress_files, report.unknown_files) == (1, 1)
    assert [u.key for u in report.abandoned_uploads] == ["2026/01/02/abandoned.wav"]
    assert all(d.action == "reported" for d in report.dangling)
    assert keys(objects) == before
    assert status(store, messy["lost"].id) is Status.COMPLETED
    # without checksums the damaged object is not read: sizes only
    assert reconcile(store, objects, stale_after_seconds=0).dangling_count == 2


def test_repair_deletes_orphans_fails_dangling_rows_and_aborts_uploads(
    store: Store, objects: FileStore, messy: dict[str, Any], musicstore_s3_url: str
) -> None:
    with pytest.raises(InvalidInput, match="delete_orphans"):
        reconcile(store, musicstore_s3_url, repair=True)
    report = reconcile(
        store,
        musicstore_s3_url,
        repair=True,
        delete_orphans=True,
        stale_after_seconds=0,
        verify_checksums=True,
    )
    assert [o.action for o in report.orphans] == ["deleted"]
    assert {d.action for d in report.dangling} == {"marked_failed"}
    assert [d.action for d in report.dangling_renditions] == ["deleted_row"]
    assert [u.action for u in report.abandoned_uploads] == ["aborted"]
    assert messy["orphan"] not in keys(objects)
    assert {messy["in_progress"], messy["other"]} <= keys(objects)  # in progress and not audio: kept
    for name in ("lost", "resized", "damaged"):
        assert status(store, messy[name].id) is Status.FAILED
    assert store.list_renditions(messy["fine"].id) == []
    found = messy["client"].get_object(Bucket=messy["bucket"], Key=messy["outside"])["Body"].read()
    assert found == b"outside"  # outside the prefix: untouched
    again = reconcile(store, musicstore_s3_url, verify_checksums=True)
    assert again.consistent, asdict(again)


def test_a_local_reconcile_leaves_bucket_renditions_alone(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    done = in_bucket(store, objects)
    rendition(store, objects, done)
    report = reconcile(store, tmp_path)
    assert report.consistent and report.renditions_checked == 0 and report.rows_checked == 0


def test_many_objects_page_through_the_merge(
    store: Store, objects: FileStore, musicstore_s3_url: str
) -> None:
    """Pages of 7 rows, and rows sharing a key at a page's end: every row and object is met once."""
    done = [in_bucket(store, objects) for _ in range(20)]
    shared = f"{done[6].created_at:%Y/%m/%d}/{done[6].id}.wav"
    done += [in_bucket(store, objects, key=shared) for _ in range(2)]  # the 7th key: 3 rows
    for generation in done[:5]:
        rendition(store, objects, generation)
    for i in range(3):
        objects.put(f"2026/01/03/0190a1b2-0000-7000-8000-00000000000{i}.wav", b"x")
    ticks: list[int] = []
    report = reconcile(store, musicstore_s3_url, batch=7, progress=ticks.append)
    assert (report.rows_checked, report.renditions_checked, report.files_scanned) == (22, 5, 28)
    assert report.orphan_count == 3 and report.dangling_count == 0 and report.referenced_files == 25
    assert ticks and ticks[-1] == 55


def test_cleanup_deletes_the_object_with_the_row_and_keeps_shared_ones(
    store: Store, objects: FileStore, clock: FakeClock, musicstore_s3_url: str
) -> None:
    old = in_bucket(store, objects)
    old_rendition = rendition(store, objects, old)
    clock.advance(86_400 * 10)
    young = in_bucket(store, objects)
    dry = cleanup(store, musicstore_s3_url, older_than=timedelta(days=5))
    assert dry.dry_run and [(d.id, d.file_action, d.renditions_deleted) for d in dry.deleted] == [
        (old.id, "would_delete", 1)
    ]
    assert len(keys(objects)) == 3 and store.get_generation(old.id) is not None
    done = cleanup(store, musicstore_s3_url, older_than=timedelta(days=5), dry_run=False)
    assert [(d.id, d.file_action) for d in done.deleted] == [(old.id, "deleted")]
    assert (done.files_deleted, done.bytes_freed) == (2, 100 + 53)
    assert keys(objects) == {f"{young.created_at:%Y/%m/%d}/{young.id}.wav"}
    assert old_rendition not in keys(objects) and store.get_generation(old.id) is None
    assert reconcile(store, musicstore_s3_url).consistent


def test_cleanup_of_one_root_leaves_rows_stored_in_another(
    store: Store, objects: FileStore, tmp_path: Path, musicstore_s3_url: str
) -> None:
    """The known bug: a local cleanup deleted a bucket row (its file "missing" on disk), not the object."""
    done = in_bucket(store, objects)
    report = cleanup(store, tmp_path, statuses=["completed"], dry_run=False)
    assert report.rows_deleted == 0 and report.skipped_count == 1
    assert objects.url in report.skipped[0].reason
    assert store.get_generation(done.id) is not None and len(keys(objects)) == 1
    job = new_job(store)  # no file: any root's cleanup may delete it
    store.cancel(job.id)
    assert cleanup(store, musicstore_s3_url, statuses=["cancelled"], dry_run=False).rows_deleted == 1


def test_disk_usage_of_a_bucket(store: Store, objects: FileStore, messy: dict[str, Any]) -> None:
    usage = disk_usage(store, objects.url)
    assert usage.root == objects.url
    assert usage.orphans.files == 1 and usage.in_progress.files == 1 and usage.other.files == 1
    assert usage.recorded.files == 3  # fine, resized, damaged (lost's object and the rendition's are gone)
    assert usage.files == 6 and usage.bytes == sum(o.size for o in objects.list())
    assert usage.uploads == 1
    assert usage.by_status["completed"].files == 3 and usage.by_status["pending"].files == 1
    assert sum(b.files for b in usage.by_day.values()) == usage.files
    day = f"{messy['fine'].created_at:%Y-%m-%d}"  # the clock's day: every key of the layout is on it
    assert usage.by_day[day].files == 5 and usage.by_day[day].bytes == usage.bytes - 9  # but the notes
    json.dumps(asdict(usage))


def test_the_commands_accept_an_s3_root(
    store: Store, db_url: str, objects: FileStore, messy: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from musicstore.cli import EXIT_INCONSISTENT, EXIT_OK, main

    base = ["--database", db_url, "-o", objects.url]
    assert main(["reconcile", *base, "--stale-after", "0s", "--json"]) == EXIT_INCONSISTENT
    found = json.loads(capsys.readouterr().out)
    assert found["root"] == objects.url and found["orphan_count"] == 1
    assert found["abandoned_upload_count"] == 1
    assert main(["reconcile", *base, "--stale-after", "0s"]) == EXIT_INCONSISTENT
    text = capsys.readouterr().out
    assert "abandoned multipart uploads" in text and messy["orphan"] in text
    assert main(["reconcile", *base, "--repair"]) != EXIT_OK  # a bucket has no quarantine
    assert "delete_orphans" in capsys.readouterr().err
    assert main(["stats", *base, "--disk", "--json"]) == EXIT_OK
    disk = json.loads(capsys.readouterr().out)["disk"]
    assert disk["root"] == objects.url and disk["orphans"]["files"] == 1
    assert main(["cleanup", *base, "--status", "completed", "--json"]) == EXIT_OK
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["rows_deleted"] == 4
    assert main(["reconcile", *base, "--repair", "--orphans", "delete", "--stale-after", "0s"]) == (
        EXIT_INCONSISTENT
    )  # found and repaired
    capsys.readouterr()
    # sizes agree for the damaged object: only reading it finds it
    assert main(["reconcile", *base, "--verify-checksums", "--json"]) == EXIT_INCONSISTENT
    verified = json.loads(capsys.readouterr().out)
    assert verified["checksums_verified"] == 2
    assert [(d["id"], d["problem"]) for d in verified["dangling"]] == [
        (messy["damaged"].id, "checksum_mismatch")
    ]


class Shuffled(Wrapped):
    """A store whose listing comes in another order than the rows' (as SeaweedFS's folder by folder order,
    or a PostgreSQL locale, may differ from bytewise order)."""

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        return iter(sorted(self.inner.list(prefix, page_size=page_size), key=lambda o: o.key[::-1]))


def test_a_listing_out_of_key_order_is_confirmed_not_misreported(store: Store, objects: FileStore) -> None:
    done = [in_bucket(store, objects) for _ in range(12)]
    rendition(store, objects, done[0])
    lost = in_bucket(store, objects)
    objects.delete(f"{lost.created_at:%Y/%m/%d}/{lost.id}.wav")
    objects.put("2026/01/03/0190a1b2-0000-7000-8000-000000000009.wav", b"orphan")
    shuffled: Any = Shuffled(objects)
    report = reconcile(store, shuffled, batch=5)
    assert (report.rows_checked, report.files_scanned, report.referenced_files) == (13, 14, 13)
    assert [d.id for d in report.dangling] == [lost.id] and report.orphan_count == 1
    usage = disk_usage(store, shuffled, batch=5)
    assert (usage.files, usage.recorded.files, usage.orphans.files) == (14, 13, 1)

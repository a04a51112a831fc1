"""Regressions found by a black-box hunt over the file stores (local, S3) and what moves files across."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from musicstore import Generation, InvalidInput, Status, StorageError, Store
from musicstore.aio import AsyncStore
from musicstore.delivery import AsyncDelivery, Delivery
from musicstore.filestore import (
    FileStore,
    LocalFileStore,
    ObjectInfo,
    ObjectNotFound,
    S3FileStore,
    open_filestore,
    store_url,
)
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.usage import disk_usage
from musicstore.ops.storage import get_storage, record_storage
from musicstore.recording import export_generation
from tests.conftest import new_job
from tests.test_copy_files import on_disk
from tests.test_maintenance_s3 import DATA, RENDITION, in_bucket, keys, rendition
from tests.test_record import OPTIONS, claimed, music
from tests.wrapped_stores import Wrapped


def test_a_key_below_an_object_is_no_object_on_both_backends(where: FileStore) -> None:
    """A key whose folder is an object (a file, locally) names nothing: ``head`` and ``get`` raise
    ``ObjectNotFound`` and ``delete`` returns False, as S3 answers; the local backend raised a
    ``StorageError`` whose message wrapped another ("reading ... failed: ...: a folder on its way ... ()")."""
    where.put("2026/01/31/abc.wav", b"RIFF")
    below = "2026/01/31/abc.wav/peaks.json"
    with pytest.raises(ObjectNotFound, match="no such object"):
        where.head(below)
    with pytest.raises(ObjectNotFound, match="no such object"):
        where.get(below)
    assert where.delete(below) is False
    assert where.delete("2026/01") is False  # a folder (a prefix on S3) is no object either
    with pytest.raises(ObjectNotFound):
        where.head("2026/01")
    assert [o.key for o in where.list()] == ["2026/01/31/abc.wav"]  # nothing was removed


def test_a_dry_run_of_copy_files_counts_what_the_copy_would(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    """A dry run's report says what the run would do: the objects and bytes it would copy, those already
    there, and the rows it would skip (another object at the key). It said "would copy the files of 3
    generations (0 objects, 0 bytes; ...)" and listed a row the copy then skipped as one it would update."""
    folder = LocalFileStore(tmp_path / "audio")
    present, clash, _fresh = on_disk(store, folder, 3)
    present_key = f"{present.created_at:%Y/%m/%d}/{present.id}.wav"
    objects.put(present_key, b"".join(folder.get(present_key)))  # an earlier run copied it, then stopped
    objects.put(f"{clash.created_at:%Y/%m/%d}/{clash.id}.wav", b"someone else's")
    dry = copy_files(store, objects, dry_run=True)
    assert keys(objects) == {present_key, f"{clash.created_at:%Y/%m/%d}/{clash.id}.wav"}  # nothing written
    real = copy_files(store, objects)
    counted = ("rows_updated", "objects_copied", "objects_present", "bytes_copied", "renditions_copied")
    assert [getattr(dry, name) for name in counted] == [getattr(real, name) for name in counted]
    assert (real.rows_updated, real.objects_copied, real.objects_present) == (2, 3, 1)
    assert [s.id for s in dry.skipped] == [s.id for s in real.skipped] == [clash.id]
    assert "exists with other bytes" in dry.skipped[0].reason


def test_reconcile_counts_the_files_it_scanned_alike_on_both_backends(
    where: FileStore, musicstore_sqlite_url: str
) -> None:
    """The same files under a folder and under a prefix give the same counts: ``files_scanned`` counted the
    files that are not audio ("other") in a bucket, not in a folder (where the CLI then printed "checked 1
    files (0 recorded, ..., 2 other)")."""
    where.put("2026/01/31/0190a1b2-0000-7000-8000-000000000001.wav", b"RIFF")  # an orphan
    where.put("notes.txt", b"hello")
    where.put("2026/01/readme.md", b"# audio")
    with Store(musicstore_sqlite_url) as store:
        report = reconcile(store, where)
        usage = disk_usage(store, where)
    assert (report.files_scanned, report.unknown_files, report.orphan_count) == (3, 2, 1)
    assert (usage.files, usage.other.files, usage.orphans.files) == (3, 2, 1)


def test_a_store_nested_in_the_prefix_keeps_its_objects(store: Store, objects: FileStore) -> None:
    """Rows recorded in ``s3://B/P/v2/`` hold objects that a reconcile of ``s3://B/P/`` lists (as are all a
    bucket's objects for ``s3://B``): they are another store's files, never orphans. Before, the outer
    reconcile reported them as orphans and its repair deleted them, leaving those rows without their files."""
    nested = open_filestore(objects.url + "v2")
    try:
        done = [in_bucket(store, nested) for _ in range(2)]
        mp3 = rendition(store, nested, done[0])
        stray = "2026/01/03/0190a1b2-0000-7000-8000-000000000009.wav"
        objects.put(stray, b"RIFF orphan")  # an orphan of the outer store's own
        report = reconcile(store, objects, repair=True, delete_orphans=True)
        assert [o.path for o in report.orphans] == [stray] and report.referenced_files == 3
        assert keys(objects) == {f"v2/{key}" for key in keys(nested)} and mp3 in keys(nested)
        assert reconcile(store, nested, verify_checksums=True).consistent
        usage = disk_usage(store, objects)
        assert (usage.recorded.files, usage.orphans.files) == (3, 0)
    finally:
        nested.close()


class CompletesAfterListing(Wrapped):
    """A store whose listing comes in one page; once it is read, a worker completes one more generation (its
    object put, its row committed) before reconcile reads the rest of the rows: a worker exporting while
    reconcile runs."""

    def __init__(self, inner: FileStore, complete: Callable[[], Generation]) -> None:
        super().__init__(inner)
        self.complete = complete
        self.completed: list[Generation] = []

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        page = list(self.inner.list(prefix, page_size=page_size))
        for number, listed in enumerate(page):
            yield listed
            if number == 0:
                self.completed.append(self.complete())


def test_a_generation_completed_while_reconcile_runs_is_not_dangling(
    store: Store, objects: FileStore
) -> None:
    """A row committed after the listing passed its key (with its object in place) is checked with a HEAD,
    not reported missing: before, the merge, its streams both in key order, took the row's object for
    missing, and a repair marked a generation that had just completed, with its object, failed."""
    for _ in range(3):
        in_bucket(store, objects)
    racing = CompletesAfterListing(objects, lambda: in_bucket(store, objects))
    report = reconcile(store, cast(FileStore, racing), batch=1, repair=True, delete_orphans=True)
    assert len(racing.completed) == 1 and report.dangling == [], report.dangling
    completed = store.get_generation(racing.completed[0].id)
    assert completed is not None and completed.status == Status.COMPLETED
    assert reconcile(store, objects, verify_checksums=True).consistent


def test_record_storage_keeps_what_maintenance_can_find(store: Store, objects: FileStore) -> None:
    """``record_storage`` (docs/storage.md) records the store's URL as ``FileStore.url`` spells it and
    refuses, as InvalidInput, what maintenance could not use. Before, ``s3://B/P`` (no ``/``) was kept as
    given, so a reconcile of that very store met no row and its repair deleted the object; a URL with
    credentials, a URL of no store, a key other than the row's file_path and a bad checksum were stored
    (the checksum as a DatabaseError)."""
    done = in_bucket(store, objects)
    key, checksum = f"{done.created_at:%Y/%m/%d}/{done.id}.wav", hashlib.sha256(DATA).hexdigest()
    refused: list[dict[str, Any]] = [
        {"storage_url": "s3://key:secret@bucket/music"},
        {"storage_url": "data/audio"},
        {"storage_url": 7},
        {"key": "2026/01/01/other.wav"},
        {"key": key + "\n"},
        {"checksum": "AB" * 32},
    ]
    for wrong in refused:
        given = {"storage_url": objects.url, "key": key, "checksum": checksum, **wrong}
        with pytest.raises(InvalidInput) as raised:
            store.run(record_storage, done.id, **given)
        assert "secret" not in str(raised.value)
    assert store.run(get_storage, done.id).storage_url == objects.url  # unchanged
    store.run(record_storage, done.id, storage_url=objects.url.rstrip("/"), key=key, checksum=checksum)
    assert store.run(get_storage, done.id).storage_url == objects.url
    report = reconcile(store, objects, repair=True, delete_orphans=True)
    assert report.consistent and keys(objects) == {key}


def test_copy_files_skips_the_rows_of_a_folder_that_is_gone(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    """Rows whose folder was moved away are skipped with the reason, and the other rows are copied; before,
    the whole run stopped at the first of them with "cannot use <folder> as the output root: None"."""
    gone, there = LocalFileStore(tmp_path / "gone"), LocalFileStore(tmp_path / "there")
    lost = on_disk(store, gone, 1)
    kept = on_disk(store, there, 2)
    (tmp_path / "gone").rename(tmp_path / "moved")
    report = copy_files(store, objects)
    assert report.rows_updated == 2
    assert {store.run(get_storage, g.id).storage_url for g in kept} == {objects.url}
    assert [s.id for s in report.skipped] == [lost[0].id]
    assert f"the output root {tmp_path / 'gone'} does not exist" in report.skipped[0].reason
    assert store.run(get_storage, lost[0].id).storage_url == gone.url


def test_objects_under_keys_musicstore_refuses_are_never_touched(
    store: Store, objects: S3FileStore, musicstore_s3_server: Any
) -> None:
    """An object another tool put under a key no FileStore takes (a control character) is counted as
    other, never an orphan: before, reconcile listed it as one and its repair stopped there with
    InvalidInput, its other repairs (later orphans, abandoned uploads) left undone."""
    client = musicstore_s3_server.client()
    try:
        foreign = objects.prefix + "2026/01/01/take\x01.wav"
        client.put_object(Bucket=objects.bucket, Key=foreign, Body=b"RIFF")
        stray = "2026/01/03/0190a1b2-0000-7000-8000-000000000009.wav"
        objects.put(stray, b"RIFF orphan")
        report = reconcile(store, objects, repair=True, delete_orphans=True)
        assert [(o.path, o.action) for o in report.orphans] == [(stray, "deleted")] and report.errors == []
        assert report.unknown_files == 1 and disk_usage(store, objects).other.files == 1
        assert client.head_object(Bucket=objects.bucket, Key=foreign)["ContentLength"] == 4
    finally:
        client.close()


@pytest.mark.parametrize("root", [123, None, "", "http://example.com/audio", "ftp://host/audio"])
def test_a_root_that_is_no_folder_nor_store_is_invalid_input(store: Store, tmp_path: Path, root: Any) -> None:
    """A root of another type or URL scheme is InvalidInput naming what to give; reconcile and disk_usage
    raised a bare TypeError for a non-path, and took ``http://x/y`` for a folder named ``http:/x/y``."""
    for run in (lambda: reconcile(store, root), lambda: disk_usage(store, root)):
        with pytest.raises(InvalidInput, match="output root"):
            run()


def test_reconcile_flags_must_be_bools(store: Store, objects: FileStore, tmp_path: Path) -> None:
    """``repair="no"`` was taken as true (a truthy string) and repaired; ``delete_orphans`` the same."""
    stray = "2026/01/03/0190a1b2-0000-7000-8000-000000000009.wav"
    objects.put(stray, b"RIFF orphan")
    for wrong in ({"repair": "no", "delete_orphans": True}, {"repair": True, "delete_orphans": 1}):
        for root in (objects, tmp_path):
            with pytest.raises(InvalidInput, match="must be True or False"):
                reconcile(store, root, **wrong)
    assert keys(objects) == {stray}


def test_a_row_that_names_no_store_is_skipped_naming_the_right_option(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    """The reason points to ``source`` (the CLI's ``--source DIR``); it named ``--from``, which only filters
    the rows by store and would not have helped."""
    folder = LocalFileStore(tmp_path / "audio")
    old = on_disk(store, folder, 1, record=False)
    report = copy_files(store, objects)
    assert [s.id for s in report.skipped] == [old[0].id]
    assert "--source" in report.skipped[0].reason and "--from" not in report.skipped[0].reason


def test_store_url_spells_a_url_as_its_store_does() -> None:
    """``store_url`` (what ``record_storage`` records) gives ``FileStore.url``'s spelling without opening the
    store, keeps a bucket name S3FileStore was made with directly (a legacy one: open_filestore refuses it,
    recording into it must not fail), and never a URL with credentials."""
    assert store_url("S3://bkt/music") == store_url("s3://bkt/music/") == "s3://bkt/music/"
    assert (
        store_url("s3://bkt") == "s3://bkt/" and store_url("s3://Legacy_Bucket/x") == "s3://Legacy_Bucket/x/"
    )
    assert store_url("file:///srv/audio/") == store_url("file://localhost/srv/audio") == "file:///srv/audio"
    for wrong in ("s3://key:secret@bkt/music", "s3:///music", "data/audio", "gs://user:pw@host/x"):
        with pytest.raises(InvalidInput) as raised:
            store_url(wrong)
        assert "secret" not in str(raised.value) and "pw" not in str(raised.value)


@pytest.mark.parametrize("overwrite", ["no", 1, None])
def test_overwrite_must_be_a_bool(where: FileStore, overwrite: Any) -> None:
    """``put(..., overwrite="no")`` replaced the object (a truthy string): InvalidInput now, nothing put."""
    where.put("2026/01/31/abc.wav", b"RIFF first")
    with pytest.raises(InvalidInput, match="overwrite"):
        where.put("2026/01/31/abc.wav", b"RIFF other", overwrite=overwrite)
    assert b"".join(where.get("2026/01/31/abc.wav")) == b"RIFF first"


def test_a_password_in_the_endpoint_url_is_in_no_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """``AWS_ENDPOINT_URL=http://user:SECRET@host`` (a proxy's credentials): 'cannot reach the S3 endpoint'
    printed the URL as it was, password and all; so did the store's repr."""
    secret = "Sw0rdfish-proxy-pass"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{secret}@127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key-value")
    files = open_filestore("s3://bucket-name/prefix/", create=False)
    assert secret not in repr(files)
    with pytest.raises(StorageError) as raised:
        files.head("a/b.wav")
    assert "cannot reach" in str(raised.value)
    assert secret not in str(raised.value) and "127.0.0.1:1" in str(raised.value)


class _Crash(BaseException):
    """A worker dying between its put and its commit: nothing after the put runs (no cleanup)."""


def test_a_retry_replaces_what_a_crashed_attempt_of_its_own_put_and_nothing_else(
    store: Store, objects: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed after its object (and its peaks) were put and before the row committed left them at
    the generation's keys; the next attempt's conditional create met them and the job failed with
    ObjectExists, for good under on_error="fail" (a folder root overwrote). The objects an attempt puts carry
    the generation's id; the attempt holding the row's lock replaces only objects so marked."""
    from musicstore.recording import export_generation
    from tests.test_record import claimed, music

    job = claimed(store)
    key = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
    real_put = objects.put

    def put_then_die(key: str, *args: Any, **kwargs: Any) -> Any:
        info = real_put(key, *args, **kwargs)
        if key.endswith(".json"):  # the peaks, put after the master: both are in place now
            raise _Crash
        return info

    monkeypatch.setattr(objects, "put", put_then_die)
    monkeypatch.setattr(objects, "delete", lambda key: False)
    with pytest.raises(_Crash):
        export_generation(store, job, music(seconds=1.0), root=objects)
    monkeypatch.undo()
    left = sorted(info.key for info in objects.list())
    assert key in left and len(left) == 2  # the master and its peaks, no row records them
    stale = objects.head(key)
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING and row.file_path is None

    recorded = export_generation(store, job, music(seconds=2.0), root=objects, on_error="fail")
    assert recorded.generation.status is Status.COMPLETED and recorded.key == key
    fresh = objects.head(key)
    assert fresh.checksum == recorded.checksum != stale.checksum
    assert hashlib.sha256(b"".join(objects.get(key))).hexdigest() == recorded.checksum
    # and the normalised peaks, put after the peaks the crash stopped at
    normalized = recorded.generation.metadata["peaks"]["normalized"]["key"]
    assert sorted(info.key for info in objects.list()) == sorted([*left, normalized])


def test_an_object_another_generation_marked_is_still_refused(store: Store, objects: FileStore) -> None:
    from musicstore.filestore import ObjectExists
    from musicstore.recording import export_generation
    from musicstore.storage_names import GENERATION_FIELD
    from tests.test_record import claimed, music

    job = claimed(store)
    key = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
    objects.put(key, b"not this generation's", metadata={GENERATION_FIELD: "0" * 36})
    with pytest.raises(ObjectExists):
        export_generation(store, job, music(), root=objects, on_error="retry")
    assert b"".join(objects.get(key)) == b"not this generation's"


class _Clients:
    """botocore's ``Session.create_client``, each call recorded with the thread that made it (the real one
    makes the client: boto3's session, config files, credentials, endpoint)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import botocore.session

        real = botocore.session.Session.create_client
        self.threads: list[threading.Thread] = []

        def counted(session: Any, *args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.current_thread())
            return real(session, *args, **kwargs)

        monkeypatch.setattr(botocore.session.Session, "create_client", counted)


def test_async_delivery_makes_its_s3_roots_client_off_the_loop_once_at_first_use(
    store: Store, db_url: str, objects: FileStore, musicstore_s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AsyncDelivery(astore, root="s3://...")`` made the root's S3 client in its constructor, on the event
    loop's thread (boto3's session reads config files and credentials: blocking). It makes it at the first
    call that needs it, in a worker thread, one client for the calls that race to be first."""
    key = "2026/01/02/old.wav"
    objects.put(key, b"RIFF old")
    job = claimed(store)
    store.complete_generation(job.id, file_path=key, file_size_bytes=8)  # no storage URL: under the root
    clients = _Clients(monkeypatch)

    async def main() -> tuple[list[bytes], list[str], threading.Thread]:
        async with AsyncStore.open(db_url) as astore:
            delivery = AsyncDelivery(astore, root=musicstore_s3_url)
            try:
                assert clients.threads == []  # the constructor made none
                read = [delivery.read_audio(job.id) for _ in range(3)]
                bodies, urls = await asyncio.gather(
                    asyncio.gather(*read), asyncio.gather(*(delivery.url_for(job) for _ in range(2)))
                )
                assert await delivery.read_audio(job) == b"RIFF old"  # made already
            finally:
                delivery.close()
        return bodies, urls, threading.current_thread()

    bodies, urls, loop_thread = asyncio.run(main())
    assert bodies == [b"RIFF old"] * 3
    assert all(f"/{key}?" in url and "X-Amz-Signature=" in url for url in urls)
    assert len(clients.threads) == 1 and clients.threads[0] is not loop_thread


@pytest.mark.parametrize(
    "case",
    [
        ("s3://", None, InvalidInput, "bucket name ''"),
        ("s3:///prefix/", None, InvalidInput, "bucket name ''"),
        ("s3://key:secret@bucket-name/p/", None, InvalidInput, "takes no credentials"),
        ("s3://bucket-name/../p/", None, InvalidInput, "'..' segment"),
        ("ftp://host/p", None, InvalidInput, "scheme 'ftp' is not supported"),
        ("s3://bucket-name/p/", {"multipart_threshold": 1}, InvalidInput, "multipart_threshold=1"),
        ("s3://bucket-name/p/", {"part_size": "8 MiB"}, InvalidInput, "part_size='8 MiB'"),
        ("s3://bucket-name/p/", {"endpoint_url": "not a url"}, StorageError, "Invalid endpoint: not a url"),
        ("s3://bucket-name/p/", {"endpoint_url": "http://a b:1"}, StorageError, "Invalid endpoint"),
        ("s3://bucket-name/p/", {"region": "no such/region"}, StorageError, "region_name 'no such/region'"),
        ("s3://bucket-name/p/", {"nonsense": 1}, InvalidInput, "'nonsense' are no S3 setting"),
    ],
)
def test_async_delivery_refuses_a_bad_s3_root_in_its_constructor_and_makes_no_client(
    musicstore_sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, dict[str, Any] | None, type[Exception], str],
) -> None:
    """A root the first use could not open raises where it did, in the constructor, as ``Delivery``'s does
    (the client is made later: its checks are made first, with the same messages)."""
    root, options, error, match = case
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key-value")
    clients = _Clients(monkeypatch)

    async def main() -> None:
        async with AsyncStore.open(musicstore_sqlite_url) as astore:
            with pytest.raises(error, match=match) as raised:
                AsyncDelivery(astore, root=root, options=options)
            with Store(musicstore_sqlite_url) as sync, pytest.raises(error) as same:
                Delivery(sync, root=root, options=options)
            assert str(raised.value) == str(same.value)

    asyncio.run(main())
    assert clients.threads == []


@pytest.mark.parametrize(
    "given", [{"endpoint": "http://127.0.0.1:1"}, {"create": True}, {"secret_key": "hunt3r2"}]
)
def test_delivery_refuses_options_that_are_no_s3_setting_where_it_is_made(
    store: Store, db_url: str, objects: FileStore, given: dict[str, Any]
) -> None:
    """``options=`` with a name ``open_filestore`` does not take (a typo: ``endpoint`` for ``endpoint_url``;
    ``create``) was kept as given, and each read of a row in a bucket then raised a bare ``TypeError``
    ("open_filestore() got an unexpected keyword argument 'endpoint'"). It is ``InvalidInput`` where the
    delivery is made, naming the option and the settings there are, not its value (a secret, perhaps)."""
    recorded = export_generation(store, claimed(store), music(), root=objects, options=OPTIONS)
    name = next(iter(given))
    with pytest.raises(InvalidInput, match=rf"'{name}'.*endpoint_url, region") as raised:
        Delivery(store, options=given)
    assert str(given[name]) not in str(raised.value)

    async def main() -> None:
        async with AsyncStore.open(db_url) as astore:
            with pytest.raises(InvalidInput, match=rf"'{name}'") as also:
                AsyncDelivery(astore, root=f"{objects.url}", options=given)
            assert str(also.value) == str(raised.value)

    asyncio.run(main())
    with Delivery(store, files=[objects]) as delivery:  # the row reads as it did, without those options
        assert hashlib.sha256(delivery.read_audio(recorded.generation)).hexdigest() == recorded.checksum


@pytest.mark.parametrize("fault", ["missing bucket", "wrong secret", "a file on the way"])
def test_demo_checks_its_output_root_before_it_enqueues(
    db_url: str, objects: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """``demo -o`` naming a bucket that is not there (a typo), with a wrong secret, or (locally) a folder
    that cannot be made, enqueued its jobs, failed the first at its export and left the others pending: the
    database then refused every later demo ("holds 1 pending job(s) the demo did not enqueue"), the right
    bucket given or not. The root is checked (one listing of a bucket; the folder made) before any job is
    enqueued: a typed error, no row, and the next demo with a good root runs."""
    from musicstore.cli.demo import run_demo

    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    if fault == "missing bucket":
        root: str = "s3://no-such-bucket-musicstore/demo/"
    elif fault == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wr0ng-demo-secret")
        root = objects.url
    else:
        (tmp_path / "taken").write_bytes(b"a file")
        root = str(tmp_path / "taken" / "audio")
    with pytest.raises(StorageError) as raised:
        run_demo(db_url, count=2, seconds=1.0, output_root=root, echo=lambda line: None)
    assert "\n" not in str(raised.value) and "wr0ng-demo-secret" not in str(raised.value)
    with Store(db_url) as store:
        assert store.count_generations() == 0
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    good = objects.url if fault != "a file on the way" else str(tmp_path / "audio")
    stats = run_demo(db_url, count=2, seconds=1.0, output_root=good, echo=lambda line: None)
    assert stats.by_status[Status.COMPLETED] == 2


@pytest.mark.parametrize("nesting", ["inside", "around"])
def test_reconcile_never_takes_a_file_of_a_store_nested_in_its_root_for_an_orphan(
    store: Store, where: FileStore, nesting: str
) -> None:
    """A file recorded by a row of a store nested in the root reconciled (``root/music/`` inside ``root``),
    or of a store around it (``root/music/`` reconciled, the row in ``root`` with a key ``music/...``), is
    the same file under another key. The bucket's reconcile looks such rows up; the folder's took their
    master and rendition for orphans, and ``repair=True, delete_orphans=True`` deleted them, leaving a
    completed row without its file. Both backends count them referenced and leave them, and ``disk_usage``
    counts no orphan."""
    inner = open_filestore(where.url.rstrip("/") + "/music/")
    recorded_in, reconciled = (inner, where) if nesting == "inside" else (where, inner)
    job = new_job(store)
    assert store.claim_next("worker-1") is not None
    master = f"{'music/' if nesting == 'around' else ''}{job.created_at:%Y/%m/%d}/{job.id}.wav"
    done = in_bucket_at(store, recorded_in, job.id, master)
    extra = f"{master.rpartition('/')[0]}/{job.id}.streaming.0123abcd.mp3"  # beside its master
    data = b"ID3" + b"\2" * 50
    recorded_in.put(extra, data)
    store.create_rendition(
        done.id, storage_key=extra, file_size_bytes=len(data), checksum=hashlib.sha256(data).hexdigest(),
        **RENDITION,
    )  # fmt: skip
    before = keys(recorded_in)
    assert len(before) == 2
    report = reconcile(store, reconciled, repair=True, delete_orphans=True)
    assert (report.orphan_count, report.referenced_files) == (0, 2), report.orphans
    assert keys(recorded_in) == before
    assert disk_usage(store, reconciled).orphans.files == 0


def in_bucket_at(store: Store, files: FileStore, gid: str, key: str) -> Generation:
    """The claimed generation ``gid`` completed with its file at ``key`` of ``files``, as recording does."""
    info = files.put(key, DATA)
    done: Generation = store.complete_generation(gid, file_path=key, file_size_bytes=len(DATA))
    assert info.checksum is not None
    store.run(record_storage, gid, storage_url=files.url, key=key, checksum=info.checksum)
    return done

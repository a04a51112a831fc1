"""Regressions of delivery, metrics and recording: each test failed before its fix (both database backends
where a store is used; S3 against the test SeaweedFS)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Status, Store
from musicstore.aio import AsyncStore
from musicstore.delivery import AsyncDelivery, Delivery
from musicstore.errors import StorageError
from musicstore.filestore import FileStore, ObjectNotFound
from musicstore.filestore.s3 import S3FileStore
from musicstore.metrics import StoreCollector, metrics_op, metrics_text, read_metrics
from musicstore.ops.storage import get_storage
from musicstore.recording import export_batch_generations, export_generation
from tests.test_record import OPTIONS, claimed, music
from tests.test_slow_connect import _SlowProxy


def test_async_delivery_has_path_for_as_the_sync_one(store: Store, db_url: str, tmp_path: Path) -> None:
    # docs/storage: AsyncDelivery gives "the same calls as coroutines"; it had no path_for at all
    recorded = export_generation(store, claimed(store), music(), root=tmp_path / "audio", options=OPTIONS)

    async def main() -> Path:
        async with AsyncStore.open(db_url) as astore, AsyncDelivery(astore) as delivery:
            return await delivery.path_for(recorded.generation)

    with Delivery(store) as delivery:
        assert asyncio.run(main()) == delivery.path_for(recorded.generation) == recorded.result.path


def test_async_path_for_refuses_an_object_store_as_the_sync_one(
    store: Store, db_url: str, objects: S3FileStore
) -> None:
    recorded = export_generation(store, claimed(store), music(), root=objects, options=OPTIONS)

    async def main() -> None:
        async with AsyncStore.open(db_url) as astore, AsyncDelivery(astore, files=[objects]) as delivery:
            await delivery.path_for(recorded.generation.id)

    with pytest.raises(StorageError, match="not on disk"):
        asyncio.run(main())


def test_metrics_leave_out_a_figure_that_is_a_json_boolean_on_both_backends(store: Store) -> None:
    # A figure that is not a JSON number is left out of the distributions (docs/dashboard). SQLite's ->> reads
    # true as 1 and false as 0, so SQLite counted loudness 1 LUFS and true peak 0 dBTP where PostgreSQL
    # (jsonb_typeof) left both out
    store.create_generation("a boolean figure", model_name="m", duration_seconds=1)
    job = store.claim_next("gpu-0", lease_seconds=60)
    assert job is not None
    figures: dict[str, object] = {"loudness_lufs": True, "true_peak_dbtp": False}
    store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=3, metadata=figures)
    store.create_generation("numbers", model_name="m", duration_seconds=1)
    job = store.claim_next("gpu-0", lease_seconds=60)
    assert job is not None
    figures = {"loudness_lufs": -16, "true_peak_dbtp": -1.5}
    store.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=3, metadata=figures)
    snapshot = read_metrics(store)
    assert (snapshot.loudness.count, snapshot.loudness.total) == (1, -16.0)
    assert (snapshot.true_peak.count, snapshot.true_peak.total) == (1, -1.5)


@pytest.mark.parametrize("odd", ["a#b/", "a?b/"])
def test_recording_refuses_up_front_a_store_whose_url_no_row_can_record(
    store: Store, musicstore_s3_server: Any, musicstore_s3_url: str, odd: str
) -> None:
    # An S3FileStore takes a prefix with '#' or '?', but its URL (s3://b/p/a#b/) reads back as a fragment or
    # a query, which record_storage refuses: each job was exported and uploaded, then its object deleted and
    # the row left processing with an InvalidInput about "an s3:// URL", to fail the same way on every retry
    bucket, prefix = musicstore_s3_url.removeprefix("s3://").split("/", 1)
    with S3FileStore(bucket, prefix + odd, **musicstore_s3_server.options) as objects:
        job = claimed(store)
        with pytest.raises(InvalidInput, match="cannot be recorded"):
            export_generation(store, job, music(), root=objects, options=OPTIONS)
        with pytest.raises(InvalidInput, match="cannot be recorded"):
            export_batch_generations(store, [job], music()[None], root=objects, options=OPTIONS)
        assert list(objects.list()) == [] and list(objects.uploads()) == []
    assert store.get_generation(job.id) == job  # untouched: a caller's mistake, found before any work


def test_a_local_root_whose_name_is_not_utf8_is_recorded_and_delivered(store: Store, tmp_path: Path) -> None:
    # A folder name holding a byte that is not UTF-8 (Linux keeps it as a surrogate) went into the row's
    # file:// URL percent-encoded (%E9), but was read back as U+FFFD: the row named another folder, and
    # Delivery found no root there ("the output root ... does not exist") for a completed generation
    root = tmp_path / "caf\udce9 #?%20 ü"
    recorded = export_generation(store, claimed(store), music(), root=root, options=OPTIONS)
    assert store.run(get_storage, recorded.generation.id).storage_url == root.as_uri() == recorded.storage_url
    with Delivery(store) as delivery:
        assert delivery.path_for(recorded.generation) == root / str(recorded.key)
        assert delivery.url_for(recorded.generation) == (root / str(recorded.key)).as_uri()
        assert hashlib.sha256(delivery.read_audio(recorded.generation)).hexdigest() == recorded.checksum


def test_metrics_refuse_an_async_store_with_a_clear_error(db_url: str) -> None:
    # read_metrics, StoreCollector and metrics_text take a Store: an AsyncStore got a bare TypeError
    # ("'_AsyncGeneratorContextManager' object does not support the context manager protocol"), and a
    # collector made with one failed at every scrape instead of where it was made
    async def main() -> None:
        async with AsyncStore.open(db_url) as astore:
            for call in (read_metrics, StoreCollector, metrics_text):
                with pytest.raises(
                    InvalidInput, match=r"takes a musicstore Store, got AsyncStore; .*metrics_op"
                ):
                    call(astore)  # type: ignore[arg-type]
            async with astore.transaction(write=False) as tx:  # what the message says to do instead
                snapshot = await tx.run(metrics_op)
            assert snapshot.by_status["pending"] == 0

    asyncio.run(main())
    with pytest.raises(InvalidInput, match="got NoneType"):
        read_metrics(None)  # type: ignore[arg-type]


def test_a_completed_generation_whose_file_is_gone_is_named_in_the_error(
    store: Store, db_url: str, where: FileStore
) -> None:
    # open_audio of a completed generation whose file was deleted said only "<url>/<key>: no such object":
    # neither which generation (an API server serves many) nor what to do
    recorded = export_generation(store, claimed(store), music(), root=where, options=OPTIONS)
    assert recorded.key is not None
    where.delete(recorded.key)
    gone = recorded.generation.id
    wanted = rf"generation {gone} is completed but its file is missing: .*no such object.*reconcile"
    with Delivery(store, files=[where]) as delivery:
        with pytest.raises(ObjectNotFound, match=wanted):
            delivery.open_audio(recorded.generation)
        with pytest.raises(ObjectNotFound, match=wanted):
            delivery.read_audio(recorded.generation.id)

    async def main() -> None:
        async with AsyncStore.open(db_url) as astore, AsyncDelivery(astore, files=[where]) as delivery:
            with pytest.raises(ObjectNotFound, match=wanted):
                await delivery.read_audio(recorded.generation)

    asyncio.run(main())


def test_a_row_in_a_folder_this_host_lacks_says_to_give_root(store: Store, tmp_path: Path) -> None:
    # A file:// row whose folder is not on this host (another host's root) raised "the output root ... does
    # not exist", naming no generation and not the remedy (root=, this host's mount of it)
    there = tmp_path / "elsewhere"
    recorded = export_generation(store, claimed(store), music(), root=there, options=OPTIONS)
    there.rename(tmp_path / "moved")
    with Delivery(store) as delivery, pytest.raises(StorageError, match=r"generation .* give root="):
        delivery.url_for(recorded.generation)
    with Delivery(store, root=tmp_path / "moved") as delivery:  # the remedy
        assert hashlib.sha256(delivery.read_audio(recorded.generation)).hexdigest() == recorded.checksum


@pytest.mark.parametrize(
    "options", [{"window": 0}, {"window": "1h"}, {"window_limit": 0}, {"sample": 10**9}, {"sample": 1.5}]
)
def test_a_collector_with_bad_options_is_refused_where_it_is_made(
    store: Store, options: dict[str, Any]
) -> None:
    # StoreCollector(store, window=0) was accepted, then every scrape raised InvalidInput: /metrics failed
    # for as long as the application ran, instead of at its start
    with pytest.raises(InvalidInput):
        StoreCollector(store, **options)


class _CommitDropper(_SlowProxy):
    """A TCP proxy to PostgreSQL that, once armed, passes the next ``COMMIT`` on and then drops the client's
    connection without passing the server's reply back: the commit lands, and the client cannot know
    (``_SlowProxy``'s accepting, with no delay, and pipes of its own)."""

    delay = 0.0

    def __init__(self, port: int) -> None:
        self.armed = threading.Event()
        self.dropped = threading.Event()
        super().__init__(port)

    def _pipes(self, client: socket.socket, server: socket.socket) -> tuple[Callable[[], None], ...]:
        cut, committed = threading.Event(), threading.Event()
        return (
            partial(self._up, client, server, cut, committed),
            partial(self._down, server, client, cut, committed),
        )

    def _up(
        self, client: socket.socket, server: socket.socket, cut: threading.Event, committed: threading.Event
    ) -> None:
        try:
            while data := client.recv(65536):
                commit = self.armed.is_set() and b"COMMIT\x00" in data
                if commit:
                    self.armed.clear()
                    cut.set()  # nothing more goes back to the client
                server.sendall(data)
                if commit:
                    # the server's reply says it committed (held back from the client): waited for, not
                    # slept (a 0.5 s sleep left a slow or loaded machine's server uncommitted at the cut)
                    committed.wait(30)
                    self.dropped.set()
                    client.shutdown(socket.SHUT_RDWR)
                    server.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:
            pass

    @staticmethod
    def _down(
        server: socket.socket, client: socket.socket, cut: threading.Event, committed: threading.Event
    ) -> None:
        held = b""  # what the server sent after the cut: its reply to the COMMIT, never passed on
        try:
            while data := server.recv(65536):
                if not cut.is_set():
                    client.sendall(data)
                    continue
                held += data
                if b"COMMIT\x00" in held:  # CommandComplete's tag: the transaction committed
                    committed.set()
                    return
        except OSError:
            pass


def test_a_commit_whose_reply_is_lost_keeps_the_file_of_a_recorded_row(
    postgres_url: str, where: FileStore
) -> None:
    # The completing transaction's COMMIT reached PostgreSQL and the connection dropped before its reply:
    # the row was completed, but export_generation took the error for a failed recording and removed the
    # file (or object): a completed row without its file, which no retry mends (the row is not processing)
    port = int(postgres_url.rpartition(":")[2].partition("/")[0])
    proxy = _CommitDropper(port)
    try:
        with Store(postgres_url.replace(f":{port}/", f":{proxy.port}/")) as store:
            job = claimed(store)
            proxy.armed.set()
            recorded = export_generation(store, job, music(), root=where, options=OPTIONS)  # it landed
        assert proxy.dropped.is_set()
    finally:
        proxy.close()
    with Store(postgres_url) as direct:
        stored = direct.run(get_storage, job.id)
        assert stored.status is Status.COMPLETED and stored.key is not None and stored.key == recorded.key
        assert recorded.generation == direct.get_generation(job.id) and recorded.checksum == stored.checksum
        assert where.head(stored.key).size == stored.size, "a completed row whose file was removed"
        with Delivery(direct, files=[where]) as delivery:
            assert hashlib.sha256(delivery.read_audio(job.id)).hexdigest() == stored.checksum


def test_a_rendition_commit_whose_reply_is_lost_keeps_its_object(postgres_url: str, where: FileStore) -> None:
    # The same for a rendition: its transaction's COMMIT reached PostgreSQL and the connection dropped before
    # the reply. _record removed the object, and render_generation, finding the row another process might
    # have recorded meanwhile, returned it: a rendition row whose object was gone
    from musicstore.rendering import render_generation

    port = int(postgres_url.rpartition(":")[2].partition("/")[0])
    with Store(postgres_url) as direct:
        job = claimed(direct)
        export_generation(direct, job, music(), root=where, options=OPTIONS)
    proxy = _CommitDropper(port)
    try:
        with Store(postgres_url.replace(f":{port}/", f":{proxy.port}/")) as store:
            proxy.armed.set()
            [made] = render_generation(store, job.id, root=where, formats=["flac"])
        assert proxy.dropped.is_set()
    finally:
        proxy.close()
    with Store(postgres_url) as direct:
        assert direct.list_renditions(job.id) == [made]
        assert where.head(made.storage_key).size == made.file_size_bytes, (
            "a rendition whose object was removed"
        )
        assert hashlib.sha256(b"".join(where.get(made.storage_key))).hexdigest() == made.checksum


class _SlowOpens:
    """``open_filestore`` as delivery calls it, each call slowed as a first S3 client is (credentials,
    endpoint and botocore's models loaded), and recorded with the thread it ran on and how far ``ticks``
    (an event loop's ticker) went on meanwhile."""

    def __init__(self, seconds: float, ticks: Callable[[], int]) -> None:
        from musicstore.filestore import open_filestore

        self.real, self.seconds, self.ticks = open_filestore, seconds, ticks
        self.threads: list[threading.Thread] = []
        self.ticked: list[int] = []

    def __call__(self, url: str, **options: Any) -> FileStore:
        self.threads.append(threading.current_thread())
        before = self.ticks()
        time.sleep(self.seconds)  # blocks whichever thread opens: the event loop's, before
        self.ticked.append(self.ticks() - before)
        return self.real(url, **options)


def test_async_delivery_opens_a_rows_s3_store_off_the_event_loop_and_once_for_racing_first_calls(
    store: Store,
    db_url: str,
    objects: S3FileStore,
    musicstore_s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # AsyncDelivery.locate opened the S3 client of a row's URL on the event loop's thread (boto3's session,
    # credentials, endpoint: blocking), so every other task of the loop stalled meanwhile
    recorded = export_generation(store, claimed(store), music(), root=objects, options=OPTIONS)
    ticks: list[int] = []
    opens = _SlowOpens(0.5, ticks.__len__)
    monkeypatch.setattr("musicstore.delivery.open_filestore", opens)

    async def main() -> tuple[list[Any], threading.Thread]:
        locating = True

        async def ticker() -> None:
            while locating:
                ticks.append(1)
                await asyncio.sleep(0.01)

        async with AsyncStore.open(db_url) as astore:
            delivery = AsyncDelivery(astore, options=musicstore_s3_server.options)  # no files=: it opens one
            try:
                ticking = asyncio.create_task(ticker())
                found = await asyncio.gather(*(delivery.locate(recorded.generation) for _ in range(3)))
                locating = False
                await ticking
                found.append(await delivery.locate(recorded.generation.id))  # opened already
                body = await delivery.read_audio(recorded.generation)
                assert hashlib.sha256(body).hexdigest() == recorded.checksum
            finally:
                delivery.close()
        return found, threading.current_thread()

    found, loop_thread = asyncio.run(main())
    assert len(opens.threads) == 1  # the three first calls shared one client
    assert opens.threads[0] is not loop_thread
    # the loop ran its other tasks while the client was made (0.5 s: ~50 ticks; none on a blocked loop)
    assert opens.ticked[0] >= 1
    assert len({id(each.files) for each in found}) == 1 and found[0].files is not objects
    assert {each.key for each in found} == {recorded.key}


def test_async_delivery_raises_what_it_raised_when_a_rows_store_cannot_be_opened(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    # the open, now in a worker thread, raises the same errors, and a failed open is tried again next time
    there = tmp_path / "elsewhere"
    recorded = export_generation(store, claimed(store), music(), root=there, options=OPTIONS)
    there.rename(tmp_path / "moved")

    async def main() -> None:
        async with AsyncStore.open(db_url) as astore, AsyncDelivery(astore) as delivery:
            for _ in range(2):
                with pytest.raises(StorageError, match=r"generation .* give root="):
                    await delivery.url_for(recorded.generation)
            (tmp_path / "moved").rename(there)
            assert hashlib.sha256(await delivery.read_audio(recorded.generation)).hexdigest() == (
                recorded.checksum
            )

    asyncio.run(main())

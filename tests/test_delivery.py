"""Delivery: a URL and a verified stream of a completed generation's audio, sync and async, from a local root
and from S3 (a real SeaweedFS), on both database backends."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, InvalidTransition, NotFound, Store
from musicstore.aio import AsyncStore
from musicstore.delivery import AsyncDelivery, Delivery
from musicstore.filestore import ChecksumMismatch, FileStore, LocalFileStore, ObjectNotFound
from musicstore.ids import new_id
from musicstore.recording import Recorded, export_generation
from tests.conftest import new_job
from tests.test_record import OPTIONS, claimed, music


def _recorded(store: Store, root: Any) -> Recorded:
    return export_generation(store, claimed(store), music(), root=root, options=OPTIONS)


def test_s3_url_and_stream_serve_the_bytes_recorded(store: Store, objects: FileStore) -> None:
    recorded = _recorded(store, objects)
    with Delivery(store) as delivery:  # the store is opened from the row's s3:// URL (AWS_* variables)
        url = delivery.url_for(recorded.generation, expires=120)
        assert "X-Amz-Expires=120" in url and recorded.key is not None and recorded.key in url
        with urllib.request.urlopen(url, timeout=60) as response:
            fetched = response.read()
        assert hashlib.sha256(fetched).hexdigest() == recorded.checksum
        chunks = list(delivery.open_audio(recorded.generation.id, chunk_size=4096))
        assert len(chunks) > 1 and b"".join(chunks) == fetched == delivery.read_audio(recorded.generation)
        with pytest.raises(Exception, match="not on disk"):
            delivery.path_for(recorded.generation)


def test_local_url_path_and_stream(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    recorded = _recorded(store, root)
    final = root / str(recorded.key)
    with Delivery(store) as delivery:  # found by the row's file:// URL
        assert delivery.url_for(recorded.generation) == final.as_uri()
        assert delivery.path_for(recorded.generation) == final
        assert delivery.read_audio(recorded.generation) == final.read_bytes()


def test_a_changed_file_fails_the_read_after_the_last_chunk(store: Store, objects: FileStore) -> None:
    recorded = _recorded(store, objects)
    assert recorded.key is not None
    objects.put(
        recorded.key, b"RIFF damaged", overwrite=True
    )  # its own sha256 metadata matches; the row's not
    with Delivery(store, files=[objects]) as delivery, pytest.raises(ChecksumMismatch, match="recorded"):
        delivery.read_audio(recorded.generation)
    objects.delete(recorded.key)
    with Delivery(store, files=[objects]) as delivery, pytest.raises(ObjectNotFound):
        delivery.open_audio(recorded.generation)


def test_rows_before_storage_urls_need_a_root_and_others_have_no_audio(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    (root / "2026/01/02").mkdir(parents=True)
    (root / "2026/01/02/old.wav").write_bytes(b"RIFF old")
    job = claimed(store)
    store.complete_generation(job.id, file_path="2026/01/02/old.wav", file_size_bytes=8)  # no storage URL
    with Delivery(store) as delivery, pytest.raises(InvalidInput, match="give root="):
        delivery.url_for(job)
    with Delivery(store, root=root) as delivery:
        assert delivery.read_audio(job.id) == b"RIFF old"  # no checksum recorded: read as it is
        assert delivery.url_for(job) == (root / "2026/01/02/old.wav").as_uri()
        pending = new_job(store)
        with pytest.raises(InvalidTransition, match="only a completed one"):
            delivery.open_audio(pending)
        with pytest.raises(NotFound):
            delivery.url_for(new_id())


def test_root_stands_for_every_local_row_but_a_given_store_serves_its_own_rows(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    # root= is this host's mount of the local root the rows name: every file:// row's key is read under it,
    # whatever folder the row names (docs/storage). A store given in files= for a row's URL served nothing
    # once root= was given too: root took the row, and its file "was missing" under root
    here, there = tmp_path / "here", tmp_path / "there"
    mine, theirs = _recorded(store, here), _recorded(store, there)
    with Delivery(store, root=here) as delivery:
        assert delivery.url_for(theirs.generation) == (here / str(theirs.key)).as_uri()  # as documented
        with pytest.raises(ObjectNotFound):
            delivery.read_audio(theirs.generation)
    with Delivery(store, root=here, files=[LocalFileStore(there)]) as delivery:
        assert delivery.url_for(theirs.generation) == (there / str(theirs.key)).as_uri()
        assert hashlib.sha256(delivery.read_audio(theirs.generation)).hexdigest() == theirs.checksum
        assert hashlib.sha256(delivery.read_audio(mine.generation)).hexdigest() == mine.checksum

    async def main() -> str:
        async with (
            AsyncStore.open(db_url) as astore,
            AsyncDelivery(astore, root=here, files=[LocalFileStore(there)]) as delivery,
        ):
            return await delivery.url_for(theirs.generation)

    assert asyncio.run(main()) == (there / str(theirs.key)).as_uri()


def test_async_delivery_matches_the_sync_one(store: Store, db_url: str, objects: FileStore) -> None:
    recorded = _recorded(store, objects)

    async def serve() -> tuple[str, bytes, list[bytes]]:
        async with AsyncStore.open(db_url) as astore, AsyncDelivery(astore, files=[objects]) as delivery:
            url = await delivery.url_for(recorded.generation.id, expires=60)
            whole = await delivery.read_audio(recorded.generation)
            chunks = [c async for c in await delivery.open_audio(recorded.generation, chunk_size=8192)]
            return url, whole, chunks

    url, whole, chunks = asyncio.run(serve())
    assert "X-Amz-Expires=60" in url
    assert hashlib.sha256(whole).hexdigest() == recorded.checksum and b"".join(chunks) == whole
    with Delivery(store, files=[objects]) as delivery:
        assert delivery.read_audio(recorded.generation) == whole

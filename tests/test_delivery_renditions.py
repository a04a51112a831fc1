"""Delivery of a recorded rendition: the same calls as a master's (URL, verified stream, local path), sync and
async, from a local root and from S3 (a real SeaweedFS), on both database backends. A rendition's file lies
in its master's store; its key, SHA-256 and size come from the rendition's row."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.aio import AsyncStore
from musicstore.delivery import AsyncDelivery, Delivery
from musicstore.filestore import ChecksumMismatch, FileStore
from musicstore.ops import Rendition
from musicstore.rendering import render_generation
from tests.test_delivery import _recorded


def _rendition(store: Store, root: Path | FileStore) -> Rendition:
    recorded = _recorded(store, root)
    (mp3,) = render_generation(store, recorded.generation.id, root=root, formats=["mp3"])
    return mp3


def test_a_local_renditions_url_path_and_stream(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    mp3 = _rendition(store, root)
    final = root / mp3.storage_key
    with Delivery(store) as delivery:
        assert delivery.path_for(mp3) == final
        assert delivery.url_for(mp3) == final.as_uri()
        assert delivery.url_for(mp3) != delivery.url_for(mp3.generation_id)  # not the master's
        data = delivery.read_audio(mp3)
    assert data == final.read_bytes() and hashlib.sha256(data).hexdigest() == mp3.checksum
    assert len(data) == mp3.file_size_bytes


def test_an_s3_renditions_url_and_stream(store: Store, db_url: str, objects: FileStore) -> None:
    mp3 = _rendition(store, objects)
    with Delivery(store, files=[objects]) as delivery:
        url = delivery.url_for(mp3, expires=90)
        assert "X-Amz-Expires=90" in url and mp3.storage_key in url
        with urllib.request.urlopen(url, timeout=60) as response:
            fetched = response.read()
        assert hashlib.sha256(fetched).hexdigest() == mp3.checksum
        assert b"".join(delivery.open_audio(mp3, chunk_size=4096)) == fetched
        with pytest.raises(Exception, match="not on disk"):
            delivery.path_for(mp3)

    async def serve() -> bytes:
        async with AsyncStore.open(db_url) as astore, AsyncDelivery(astore, files=[objects]) as delivery:
            assert mp3.storage_key in await delivery.url_for(mp3)
            return await delivery.read_audio(mp3)

    assert asyncio.run(serve()) == fetched


def test_a_changed_rendition_fails_its_read(store: Store, objects: FileStore) -> None:
    """The bytes are checked against the rendition's SHA-256, not the master's."""
    mp3 = _rendition(store, objects)
    objects.put(mp3.storage_key, b"ID3 damaged", overwrite=True)
    with Delivery(store, files=[objects]) as delivery, pytest.raises(ChecksumMismatch, match="recorded"):
        delivery.read_audio(mp3)


@pytest.mark.parametrize("options", ["endpoint_url=x", [("a", "b")], 3])
def test_options_that_are_not_a_mapping_are_refused(store: Store, options: object) -> None:
    with pytest.raises(InvalidInput, match="options must be a mapping"):
        Delivery(store, options=options)  # type: ignore[arg-type]

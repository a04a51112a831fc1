"""Regressions of delivery, metrics and recording: each test failed before its fix (both database backends
where a store is used; S3 against the test SeaweedFS)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from musicstore import Store
from musicstore.aio import AsyncStore
from musicstore.delivery import AsyncDelivery, Delivery
from musicstore.errors import StorageError
from musicstore.filestore.s3 import S3FileStore
from musicstore.recording import export_generation
from tests.test_record import OPTIONS, claimed, music


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

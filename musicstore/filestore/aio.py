"""A ``FileStore`` for asyncio: the same methods as coroutines, each run in a worker thread.

There is one implementation of every operation (the sync one); ``AsyncFileStore`` only moves the blocking
calls off the event loop with ``asyncio.to_thread`` (boto3's client is thread-safe; the local backend holds
nothing between calls). A read or a listing is pulled from its sync iterator in the thread as well: ``get``
chunk by chunk, ``list`` and ``uploads`` a page at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import TypeVar

from ..errors import InvalidInput
from .base import CHUNK_SIZE, FileStore, ObjectInfo, Source, Upload

T = TypeVar("T")


async def _pull(items: Iterator[T], batch: int) -> AsyncGenerator[T, None]:
    """``items`` a page at a time from a worker thread, closed at the end. A cancelled pull's thread goes on
    (a slow S3 read): ``close`` waits for it (the lock), or it raised 'generator already executing' in
    place of the ``CancelledError`` and left the file or response open."""
    lock = threading.Lock()

    def take() -> list[T]:
        with lock:
            return list(itertools.islice(items, batch))

    def close() -> None:
        with lock:
            getattr(items, "close", lambda: None)()

    try:
        while page := await asyncio.to_thread(take):
            for item in page:
                yield item
    finally:
        await asyncio.to_thread(close)


class _Chunks(AsyncIterator[bytes]):
    """An object's chunks pulled from its opened sync read (``_pull``); ``aclose()`` closes that read before
    the first chunk too (an async generator not started runs no ``finally``: the file stayed open)."""

    def __init__(self, opened: Iterator[bytes]) -> None:
        self._opened, self._pulled = opened, _pull(opened, 1)

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._pulled)

    async def aclose(self) -> None:
        await self._pulled.aclose()  # started: its finally closed the read (waiting for a pull in flight)
        await asyncio.to_thread(getattr(self._opened, "close", lambda: None))  # closing again is a no-op


class AsyncFileStore:
    """``store``'s operations as coroutines (see ``FileStore`` for what each does and raises)."""

    def __init__(self, store: FileStore) -> None:
        if not isinstance(store, FileStore):  # an AsyncFileStore too: its head() gave an unawaited coroutine
            raise InvalidInput(f"AsyncFileStore takes a FileStore not {type(store).__name__}")
        self.store = store
        self.url = store.url

    def __repr__(self) -> str:
        return f"AsyncFileStore({self.store!r})"

    async def __aenter__(self) -> AsyncFileStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)

    async def put(
        self,
        key: str,
        data: Source,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        return await asyncio.to_thread(
            self.store.put, key, data, content_type=content_type, metadata=metadata, overwrite=overwrite
        )

    async def get(
        self, key: str, *, checksum: str | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """Opens the object now (``ObjectNotFound`` is raised here) and returns its chunks:
        ``async for chunk in await store.get(key)``."""
        chunks = await asyncio.to_thread(self.store.get, key, checksum=checksum, chunk_size=chunk_size)
        return _Chunks(chunks)

    async def read(self, key: str, *, checksum: str | None = None) -> bytes:
        """The whole object, verified (for small objects: it is held in memory)."""
        return await asyncio.to_thread(lambda: b"".join(self.store.get(key, checksum=checksum)))

    async def head(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self.store.head, key)

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self.store.delete, key)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> AsyncIterator[ObjectInfo]:
        return _pull(self.store.list(prefix, page_size=page_size), page_size)

    def uploads(self) -> AsyncIterator[Upload]:
        return _pull(self.store.uploads(), 1000)

    async def abort(self, upload: Upload) -> None:
        await asyncio.to_thread(self.store.abort, upload)

    async def presigned_url(self, key: str, *, expires: int = 3600, method: str = "GET") -> str:
        return await asyncio.to_thread(self.store.presigned_url, key, expires=expires, method=method)


__all__ = ["AsyncFileStore"]

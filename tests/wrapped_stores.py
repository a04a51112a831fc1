"""A file store wrapped by a test to change one behaviour (a listing's order, a put held or killed), the rest
the wrapped store's own.

Every member of ``FileStore`` is written out: since Python 3.12, ``isinstance`` against a runtime-checkable
protocol looks members up statically, so a wrapper delegating through ``__getattr__`` alone is no
``FileStore`` there (the library refuses it as an output root)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from musicstore.filestore import FileStore, ObjectInfo, Upload


class Wrapped:
    """``inner``'s members, each one overridable; other attributes (``root``, a client) read through."""

    def __init__(self, inner: FileStore) -> None:
        self.inner, self.url = inner, inner.url

    def put(self, key: str, data: Any, **options: Any) -> ObjectInfo:
        return self.inner.put(key, data, **options)

    def get(self, key: str, **options: Any) -> Iterator[bytes]:
        return self.inner.get(key, **options)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def delete(self, key: str) -> bool:
        return self.inner.delete(key)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, page_size=page_size)

    def uploads(self) -> Iterator[Upload]:
        return self.inner.uploads()

    def abort(self, upload: Upload) -> None:
        self.inner.abort(upload)

    def presigned_url(self, key: str, **options: Any) -> str:
        return self.inner.presigned_url(key, **options)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

"""Where audio files live: one small interface (``FileStore``) over a local folder or S3-compatible storage.

``open_filestore(url)`` picks the backend: a path or ``file://`` URL is a local folder (``LocalFileStore``),
``s3://BUCKET/PREFIX`` an object store (``S3FileStore``, the ``s3`` extra). Also here: the contained local
output root maintenance walks (``local.RootDir``, ``O_NOFOLLOW``) and durable writes (``fsync``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import InvalidInput
from ..storage_names import SCHEME, local_path, s3_location, store_url
from .aio import AsyncFileStore
from .base import (
    ChecksumMismatch,
    FileStore,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreUnavailable,
    Upload,
    check_key,
)
from .folder import LocalFileStore

if TYPE_CHECKING:
    from .s3 import S3FileStore


def open_filestore(
    url: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    multipart_threshold: int | None = None,
    part_size: int | None = None,
    create: bool = True,
) -> FileStore:
    """The file store at ``url``: a folder path, ``file:///abs/path`` or ``s3://BUCKET[/PREFIX]``.

    S3 settings not given here come from ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``). ``create`` makes a missing local folder.
    """
    s3_options = {
        "endpoint_url": endpoint_url,
        "region": region,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "session_token": session_token,
        "multipart_threshold": multipart_threshold,
        "part_size": part_size,
    }
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"storage URL {url!r} must be a path, file:///PATH or s3://BUCKET/PREFIX")
    scheme = SCHEME.match(url)
    if scheme is None or scheme[1].lower() == "file":
        given = [name for name, value in s3_options.items() if value is not None]
        if given:
            raise InvalidInput(f"{', '.join(given)} apply to s3:// storage only, not to a local folder")
        return LocalFileStore(local_path(url) if scheme else url, create=create)
    if scheme[1].lower() != "s3":
        raise InvalidInput(f"storage URL scheme {scheme[1]!r} is not supported: use a path, file:// or s3://")
    bucket, prefix = s3_location(url)
    from .s3 import S3FileStore

    return S3FileStore(bucket, prefix, **{k: v for k, v in s3_options.items() if v is not None})  # type: ignore[arg-type]


__all__ = [
    "AsyncFileStore",
    "ChecksumMismatch",
    "FileStore",
    "LocalFileStore",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "S3FileStore",
    "StoreUnavailable",
    "Upload",
    "check_key",
    "local_path",
    "open_filestore",
    "store_url",
]


def __getattr__(name: str) -> object:
    if name == "S3FileStore":
        from .s3 import S3FileStore

        return S3FileStore
    raise AttributeError(name)

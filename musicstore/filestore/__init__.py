"""Where audio files live: one small interface (``FileStore``) over a local folder or S3-compatible storage.

``open_filestore(url)`` picks the backend: a path or ``file://`` URL is a local folder (``LocalFileStore``),
``s3://BUCKET/PREFIX`` an object store (``S3FileStore``, the ``s3`` extra). Also here: the contained local
output root maintenance walks (``local.RootDir``, ``O_NOFOLLOW``) and durable writes (``fsync``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import validate
from ..errors import InvalidInput
from ..storage_names import SCHEME, local_path, s3_location, store_url
from .aio import AsyncFileStore
from .base import (
    ChecksumMismatch,
    FileStore,
    KeyConflict,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreUnavailable,
    Upload,
    check_key,
)
from .folder import LocalFileStore
from .folder_names import check_root

if TYPE_CHECKING:
    from .s3 import S3FileStore


_STORE_SCHEME = re.compile(r"(?i)(s3|file):")
_ONE_SLASH = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")
"""What ``pathlib.Path`` makes of a URL (``s3://b/p`` → ``s3:/b/p``), or a store URL mistyped: refused, never
taken for a relative folder of that name (created in the working directory, every export put there)."""


S3_OPTIONS = (
    "endpoint_url",
    "region",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "multipart_threshold",
    "part_size",
)
"""The S3 settings ``open_filestore`` takes (``Delivery``'s ``options=``)."""


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
    validate.flag(create, "create")
    where, options = _where(url, s3_options)
    if not isinstance(where, tuple):
        return LocalFileStore(where, create=create)
    from .s3 import S3FileStore

    return S3FileStore(*where, **options)


def check_filestore(
    url: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    multipart_threshold: int | None = None,
    part_size: int | None = None,
) -> None:
    """Raise what ``open_filestore`` raises for this URL and these options, without opening anything (no
    folder is looked at, no S3 client made: nothing blocks but boto3's first import). For an ``s3://`` URL,
    what remains for ``open_filestore`` to find is in the environment: config files, credentials."""
    s3_options = {
        "endpoint_url": endpoint_url,
        "region": region,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "session_token": session_token,
        "multipart_threshold": multipart_threshold,
        "part_size": part_size,
    }
    where, options = _where(url, s3_options)
    if isinstance(where, tuple):
        from .s3 import check_settings

        check_settings(*where, **options)


def _where(
    url: str | os.PathLike[str], s3_options: dict[str, Any]
) -> tuple[str | Path | tuple[str, str], dict[str, Any]]:
    """The local folder's path, or the bucket and prefix with the S3 options given (``InvalidInput``)."""
    if isinstance(url, os.PathLike):
        url = validate.os_path(url, "a storage folder's path")  # a str: not bytes, its __fspath__ not failing
    if not isinstance(url, str) or not url:  # not echoed: b"s3://KEY:SECRET@..." holds a secret
        kind = "an empty string" if url == "" else type(url).__name__
        raise InvalidInput(
            f"a storage URL must be a str path, file:///PATH or s3://BUCKET/PREFIX, not {kind}"
        )
    scheme = SCHEME.match(url)
    mangled = None if scheme else (_STORE_SCHEME.match(url) or _ONE_SLASH.match(url))
    if mangled:  # not echoed: it may hold a secret
        raise InvalidInput(
            f"{mangled[1]}:… with one slash or none is not a URL (pathlib.Path makes {mangled[1]}:/… of "
            f"{mangled[1]}://…): give s3://BUCKET/PREFIX or file:///PATH as a str, or a folder's path"
        )
    if scheme is None or scheme[1].lower() == "file":
        given = [name for name, value in s3_options.items() if value is not None]
        if given:
            raise InvalidInput(f"{', '.join(given)} apply to s3:// storage only, not to a local folder")
        check_root(url)  # as LocalFileStore refuses it
        folder = validate.os_path(local_path(url) if scheme else url, "a storage folder's path")
        return (Path(folder) if scheme else folder), {}
    if scheme[1].lower() != "s3":
        raise InvalidInput(f"storage URL scheme {scheme[1]!r} is not supported: use a path, file:// or s3://")
    return s3_location(url), {name: value for name, value in s3_options.items() if value is not None}


__all__ = [
    "AsyncFileStore",
    "ChecksumMismatch",
    "FileStore",
    "KeyConflict",
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

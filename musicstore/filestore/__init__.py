"""Where audio files live: one small interface (``FileStore``) over a local folder or S3-compatible storage.

``open_filestore(url)`` picks the backend: a path or ``file://`` URL is a local folder (``LocalFileStore``),
``s3://BUCKET/PREFIX`` an object store (``S3FileStore``, the ``s3`` extra). Also here: the contained local
output root maintenance walks (``local.RootDir``, ``O_NOFOLLOW``) and durable writes (``fsync``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..errors import InvalidInput
from .aio import AsyncFileStore
from .base import (
    ChecksumMismatch,
    FileStore,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    Upload,
    check_key,
    check_prefix,
)
from .folder import LocalFileStore

if TYPE_CHECKING:
    from .s3 import S3FileStore

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


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
    scheme = _SCHEME.match(url)
    if scheme is None or scheme[1].lower() == "file":
        given = [name for name, value in s3_options.items() if value is not None]
        if given:
            raise InvalidInput(f"{', '.join(given)} apply to s3:// storage only, not to a local folder")
        return LocalFileStore(local_path(url) if scheme else url, create=create)
    if scheme[1].lower() != "s3":
        raise InvalidInput(f"storage URL scheme {scheme[1]!r} is not supported: use a path, file:// or s3://")
    bucket, prefix = _s3_location(url)
    from .s3 import S3FileStore

    return S3FileStore(bucket, prefix, **{k: v for k, v in s3_options.items() if v is not None})  # type: ignore[arg-type]


def store_url(url: object) -> str:
    """A store's URL as ``FileStore.url`` spells it, found without opening the store: what rows record and
    maintenance compares (``s3://b/p`` → ``s3://b/p/``, ``file:///srv/audio/`` → ``file:///srv/audio``;
    another scheme, a ``FileStore`` of your own, as given). Raises ``InvalidInput`` for a bare path, a URL
    with credentials (not echoed) or a control character."""
    usage = "a storage URL is a FileStore's url: s3://BUCKET/PREFIX, file:///PATH"
    if not isinstance(url, str):
        raise InvalidInput(f"{usage}, not {type(url).__name__}")
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise InvalidInput(f"{usage}, not a bare path")
    name = scheme[1].lower()
    if name == "s3":
        bucket, prefix = _s3_location(url, strict=False)  # a legacy bucket name an S3FileStore was made with
        return f"s3://{bucket}/{prefix}"
    if name == "file":
        return local_path(url).as_uri()
    if "@" in url.partition("://")[2].partition("/")[0] or any(ord(c) < 32 or c == "\x7f" for c in url):
        raise InvalidInput(f"{usage}; a {name}:// URL without credentials or control characters")
    return url


def local_path(url: str) -> Path:
    """The folder a ``file:///absolute/path`` URL names; ``InvalidInput`` (the URL not echoed: it may hold
    credentials) for one with a host, a query or a fragment, or without an absolute path."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidInput("a file:// URL names a local folder: file:///absolute/path (no host, query or #)")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise InvalidInput("a file:// URL needs an absolute path: file:///absolute/path")
    return Path(path)


def _s3_location(url: str, *, strict: bool = True) -> tuple[str, str]:
    if "@" in url:  # not echoed: it may hold a secret (one with a '/' ends urllib's netloc early)
        raise InvalidInput(
            "an s3:// URL takes no credentials (and no '@'); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or pass them"
        )
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise InvalidInput("an s3:// URL is s3://BUCKET/PREFIX, without a query or fragment")
    bucket = parts.netloc
    if not bucket or (strict and (not _BUCKET.fullmatch(bucket) or ".." in bucket)):
        raise InvalidInput(f"bucket name {bucket!r}: 3-63 lower-case letters, digits, '.' and '-'")
    prefix = parts.path.lstrip("/")
    if prefix:
        check_prefix(prefix)
        prefix = prefix.rstrip("/") + "/"
    return bucket, prefix


__all__ = [
    "AsyncFileStore",
    "ChecksumMismatch",
    "FileStore",
    "LocalFileStore",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "S3FileStore",
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

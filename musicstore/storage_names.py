"""Storage names checked without opening a store: object keys and listing prefixes, SHA-256 checksums, and a
store's URL as ``FileStore.url`` spells it: the vocabulary ``musicstore.filestore`` and the operation that
records where a file is (``ops.storage.record_storage``) share."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import InvalidInput, shown

MAX_KEY_BYTES = 1024
MAX_URL_CHARS = 2048
"""The longest storage URL a row holds (``generations.storage_url``'s CHECK, on both backends)."""
GENERATION_FIELD = "generation-id"
"""The object metadata field in which recording marks an object with its generation's id."""
ATTEMPT_FIELD = "export-attempt"
"""The object metadata field in which an export marks the objects it puts with a token of its own (one per
call): its cleanup removes only objects bearing it (``recording.uploads``)."""


def peaks_digest(generation_id: str) -> str:
    """The 8 hex of a generation's id in the name of its peaks beside a master named by hand whose stem's
    peaks file another generation's master holds (``<stem>.peaks.<8 hex>.<spp>.<bits>[.split].json``)."""
    return hashlib.sha256(generation_id.encode()).hexdigest()[:8]


def normalized_peaks_key(peaks_key: str) -> str:
    """The key of the normalised peaks file (floats in [−1, 1]) beside the audiowaveform peaks file at
    ``peaks_key``: ``<...>.peaks.<spp>.<bits>[.split].normalized.json``."""
    return peaks_key.removesuffix(".json") + ".normalized.json"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Unicode's control characters (category Cc: C0, DEL, C1)."""
_CHECKSUM = re.compile(r"[0-9a-f]{64}")
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp")
"""A write's temp file (``.<name>.<8 random>.tmp``; ``musicstore.audio.files`` makes the same): no key's
last segment (the local backend lists them as unfinished uploads, reconcile as exports in flight)."""
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
"""A URL's scheme, as a store URL begins."""


def check_key(key: object, what: str = "key") -> str:
    """``key`` if it names an object below the root; raises ``InvalidInput`` saying why not."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{what} {shown(key)} must be a non-empty string like '2026/01/31/<id>.wav'")
    if _CONTROL.search(key):
        raise InvalidInput(f"{what} {shown(key)} holds a control character")
    if "\\" in key:
        raise InvalidInput(f"{what} {shown(key)} holds a backslash; separate folders with '/'")
    if key.startswith("/"):
        raise InvalidInput(f"{what} {shown(key)} is absolute; give it relative to the store's root")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeError:
        raise InvalidInput(f"{what} {shown(key)} is not valid Unicode text") from None
    if size > MAX_KEY_BYTES:
        raise InvalidInput(f"{what} is {size} bytes long; at most {MAX_KEY_BYTES}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidInput(f"{what} {shown(key)} has an empty, '.' or '..' segment")
    if what == "key" and TEMP_NAME.fullmatch(key.rpartition("/")[2]):
        raise InvalidInput(f"{what} {shown(key)} has the form of a write's temp file (.<name>.<8 chars>.tmp)")
    return key


def check_prefix(prefix: object) -> str:
    """A listing prefix: empty, or a key's beginning (it may end with ``/``)."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InvalidInput(f"prefix {shown(prefix)} must be a string")
    check_key(prefix.removesuffix("/") or ".", "prefix")
    return prefix


def check_checksum(checksum: str | None) -> str | None:
    if checksum is not None and (not isinstance(checksum, str) or not _CHECKSUM.fullmatch(checksum)):
        raise InvalidInput(f"checksum {shown(checksum)} must be a SHA-256 in lower-case hex (64 digits)")
    return checksum


def store_url(url: object) -> str:
    """A store's URL as ``FileStore.url`` spells it, found without opening the store: what rows record and
    maintenance compares (``s3://b/p`` → ``s3://b/p/``, ``file:///srv/audio/`` → ``file:///srv/audio``;
    another scheme, a ``FileStore`` of your own, as given). Raises ``InvalidInput`` for a bare path, a URL
    with credentials (not echoed), a control character, or one over ``MAX_URL_CHARS`` (no row holds it)."""
    usage = "a storage URL is a FileStore's url: s3://BUCKET/PREFIX, file:///PATH"
    if not isinstance(url, str):
        raise InvalidInput(f"{usage}, not {type(url).__name__}")
    scheme = SCHEME.match(url)
    if scheme is None:
        raise InvalidInput(f"{usage}, not a bare path")
    name = scheme[1].lower()
    if name == "s3":
        bucket, prefix = s3_location(url, strict=False)  # a legacy bucket name an S3FileStore was made with
        canonical = f"s3://{bucket}/{prefix}"
    elif name == "file":
        canonical = local_path(url).as_uri()
    elif "@" in url.partition("://")[2].partition("/")[0] or _CONTROL.search(url):  # C0, DEL, C1
        raise InvalidInput(f"{usage}; a {name}:// URL without credentials or control characters")
    else:
        canonical = url
    if len(canonical) > MAX_URL_CHARS:
        raise InvalidInput(
            f"a storage URL holds at most {MAX_URL_CHARS:,} characters (what a row records); this one has "
            f"{len(canonical):,}: use a root with a shorter path"
        )
    return canonical


def local_path(url: str) -> Path:
    """The folder a ``file:///absolute/path`` URL names; ``InvalidInput`` (the URL not echoed: it may hold
    credentials) for one with a host, a query or a fragment, or without an absolute path."""
    if not isinstance(url, str):
        raise InvalidInput(f"a file:// URL must be a str, got {type(url).__name__}")
    _check_no_control(url)
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidInput("a file:// URL names a local folder: file:///absolute/path (no host, query or #)")
    path = unquote(parts.path, errors="surrogateescape")  # as Path.as_uri wrote a name's non-UTF-8 bytes
    if not path.startswith("/") or "\x00" in path:
        raise InvalidInput("a file:// URL needs an absolute path: file:///absolute/path")
    return Path(path)


def _check_no_control(url: str) -> None:
    """InvalidInput (the URL not echoed) for a control character: ``urlsplit`` drops each tab, CR and LF, so
    ``s3://my-bu\\tcket/mus\\nic`` was ``s3://my-bucket/music/``. (A folder's name that holds one is written
    percent-encoded, as ``Path.as_uri`` writes it.)"""
    if _CONTROL.search(url):
        raise InvalidInput(
            "a storage URL holds no control character (tab, newline...); percent-encode one in a name"
        )


def s3_location(url: str, *, strict: bool = True) -> tuple[str, str]:
    if "@" in url:  # not echoed: it may hold a secret (one with a '/' ends urllib's netloc early)
        raise InvalidInput(
            "an s3:// URL takes no credentials (and no '@'); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or pass them"
        )
    _check_no_control(url)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise InvalidInput("an s3:// URL is s3://BUCKET/PREFIX, without a query or fragment")
    bucket = parts.netloc
    if ":" in bucket:  # not echoed either: s3://KEY:SECRET/... (credentials without the '@')
        raise InvalidInput(
            "an s3:// URL's bucket name holds no ':' (not shown: it may hold a secret); the endpoint goes in "
            "AWS_ENDPOINT_URL, credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if not bucket or (strict and (not _BUCKET.fullmatch(bucket) or ".." in bucket)):
        raise InvalidInput(f"bucket name {shown(bucket)}: 3-63 lower-case letters, digits, '.' and '-'")
    prefix = parts.path.removeprefix("/")
    if prefix.startswith("/"):  # s3://bucket//music: an empty segment, refused as in any prefix
        raise InvalidInput("an s3:// URL is s3://BUCKET/PREFIX, with no empty segment ('//') in its prefix")
    if prefix:
        check_prefix(prefix)
        prefix = prefix.rstrip("/") + "/"
    return bucket, prefix

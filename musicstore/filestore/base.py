"""The file-storage interface both backends implement, its records, errors and the checks they share.

A *key* names an object below the store's root or prefix: ``2026/01/31/<id>.wav``. It is checked before any
I/O (``check_key``): a non-empty string of at most 1024 UTF-8 bytes, ``/``-separated segments, none empty,
``.`` or ``..``, no leading ``/``, no backslash, no control character. User metadata (the audio figures) is
at most ``MAX_METADATA_BYTES`` of lower-case names (``MAX_METADATA_NAMES`` of them) and printable ASCII
values, as S3 keeps it.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, BinaryIO, Protocol, _ProtocolMeta, cast, runtime_checkable

from ..errors import InvalidInput, StorageError, shown
from ..storage_names import GENERATION_FIELD, MAX_KEY_BYTES, check_key, check_prefix
from ..validate import whole_number

MAX_METADATA_NAMES = 64
"""The most user metadata names an object takes: each is a header of every answer about the object (its
``HEAD``, its ``GET``), and Python's HTTP client (under boto3) refuses an answer of more than 100 headers,
so an object put with some 90 names could never be read again ("cannot reach the S3 endpoint")."""
CHUNK_SIZE = 1 << 20
"""Bytes per chunk a read yields (``get``) and a write reads from its source."""
MAX_URL_SECONDS = 7 * 24 * 3600
"""The longest expiry of a presigned URL (SigV4's limit)."""
CHECKSUM_FIELD = "sha256"
"""The metadata name the checksum is kept under (reserved: user metadata may not use it)."""
MAX_METADATA_BYTES = 2048 - len(CHECKSUM_FIELD) - 64
"""The most bytes of user metadata (names and values) a put takes: 1,978. S3 holds 2 KB of an object's user
metadata, names and values counted, and the store puts its checksum (``sha256``, 64 hex digits) beside it:
a put of the full 2,048 was refused by AWS S3 ("MetadataTooLarge")."""

_META_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_META_VALUE = re.compile(r"[\x20-\x7e]*")
_META_TEXT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
"""A metadata value: printable ASCII, not empty, no space at either end (HTTP headers drop those)."""

Source = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]
"""What a put takes: the bytes, a binary file open for reading (read from where it stands), or chunks."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object at that key."""


class ObjectExists(StorageError, FileExistsError):
    """A conditional create found an object at the key already; it was left unchanged."""


class KeyConflict(ObjectExists):
    """The key is the folder of other objects (``p`` with ``p/q.wav`` stored), or one of its folders is an
    object (``r/s.wav`` with ``r`` stored): a folder cannot hold both, so neither store does (checked before
    the put, with or without ``overwrite``; nothing changes)."""


class StoreUnavailable(StorageError):
    """The store as a whole cannot be used: access denied (wrong or missing credentials, a policy), no such
    bucket, or its endpoint unreachable. Every other request would fail alike, so work over many objects
    (``copy_files``) stops at the first instead of skipping them one by one."""


class ChecksumMismatch(StorageError):
    """The bytes read do not hash to the checksum recorded for them (or the one the caller expected)."""


@dataclass(frozen=True)
class ObjectInfo:
    """An object as head/put report it. A listing fills only key, size and modified (S3 lists no more)."""

    key: str
    size: int
    checksum: str | None = None
    """SHA-256 of the bytes, lower-case hex; None when the store holds none for it."""
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    modified: datetime | None = None


@dataclass(frozen=True)
class Upload:
    """An upload begun and never finished (an S3 multipart upload, a local temp file).

    ``initiated``: when a bucket's upload began; for a folder, its temp file's last write (a write still
    going on never looks old)."""

    key: str
    upload_id: str
    initiated: datetime | None


class _FileStoreType(_ProtocolMeta):
    def __instancecheck__(self, instance: Any) -> bool:
        """An ``AsyncFileStore`` has every method of the protocol, as coroutines: it is no ``FileStore``
        (taken for one, its coroutines ended in a TypeError far from the call, a job left processing)."""
        from .aio import AsyncFileStore

        return not isinstance(instance, AsyncFileStore) and super().__instancecheck__(instance)


@runtime_checkable
class FileStore(Protocol, metaclass=_FileStoreType):
    """One root (a folder, or an S3 bucket and prefix) that objects are put in and read from by key.

    ``isinstance(x, FileStore)`` holds for any object with these members, except an ``AsyncFileStore``."""

    url: str
    """Where it is: a ``file://`` URL or ``s3://BUCKET/PREFIX`` (never a credential)."""

    def put(
        self,
        key: str,
        data: Source,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """Store ``data`` at ``key`` whole or not at all; returns its size and SHA-256 (to keep in the row).

        Unless ``overwrite``, the create is conditional: an object already at the key raises ``ObjectExists``
        and is left as it was, whoever (whichever host) put it; unless it holds these very bytes (same
        recorded SHA-256 and size): then that is a retry, not a conflict, and its head is returned.
        """
        ...

    def get(self, key: str, *, checksum: str | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The object's bytes in chunks, hashed as they pass: after the last chunk a checksum differing from
        ``checksum`` (or, without it, from the one stored with the object) raises ``ChecksumMismatch``."""
        ...

    def head(self, key: str) -> ObjectInfo:
        """Size, checksum, content type and metadata of the object; ``ObjectNotFound`` if there is none."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none."""
        ...

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, once, fetched a page at a time (memory bounded).

        Local and AWS S3 list in key order (bytewise); SeaweedFS lists folder by folder."""
        ...

    def uploads(self) -> Iterator[Upload]:
        """Uploads begun and not completed (candidates to ``abort`` once old enough)."""
        ...

    def abort(self, upload: Upload) -> None:
        """Discard an unfinished upload (nothing at its key changes)."""
        ...

    def presigned_url(self, key: str, *, expires: int = 3600, method: str = "GET") -> str:
        """A URL that reads the object without credentials for ``expires`` seconds (local: a file URL), with
        ``method`` (``"GET"`` or ``"HEAD"``: S3 signs the method, a GET URL answers a HEAD 403)."""
        ...

    def close(self) -> None: ...


def check_upload(upload: object) -> Upload:
    """``upload`` when it is an ``Upload`` with a str id (what ``uploads()`` gives), else ``InvalidInput``."""
    if not isinstance(upload, Upload):
        got = type(upload).__name__
        raise InvalidInput(f"upload must be an Upload (from the store's uploads()), got {got}")
    if not isinstance(upload.upload_id, str) or not upload.upload_id:
        raise InvalidInput(f"an upload's upload_id must be a non-empty str, got {shown(upload.upload_id)}")
    return upload


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as both backends keep it; raises ``InvalidInput``."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput("metadata must be a mapping of names to strings")
    if len(metadata) > MAX_METADATA_NAMES:
        raise InvalidInput(f"metadata has {len(metadata)} names; at most {MAX_METADATA_NAMES}")
    checked: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not _META_NAME.fullmatch(name):
            raise InvalidInput(f"metadata name {shown(name)}: lower-case letters, digits, '-' and '_', 1-64")
        if name == CHECKSUM_FIELD:
            raise InvalidInput(f"metadata name {shown(name)} is reserved for the checksum the store keeps")
        if not isinstance(value, str) or not _META_TEXT.fullmatch(value):
            raise InvalidInput(
                f"metadata {name!r}: the value must be printable ASCII, not empty, no space at its ends"
            )
        checked[name] = value
    size = sum(len(name) + len(value) for name, value in checked.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata takes {size} bytes; at most {MAX_METADATA_BYTES}")
    return checked


def check_overwrite(overwrite: object) -> bool:
    """``overwrite`` if it is a bool: a truthy string ("no") must not replace an object."""
    if not isinstance(overwrite, bool):
        raise InvalidInput(f"overwrite={shown(overwrite)} must be True or False")
    return overwrite


def check_content_type(content_type: str | None) -> str | None:
    if content_type is not None and (
        not isinstance(content_type, str)
        or not content_type
        or not _META_VALUE.fullmatch(content_type)
        or len(content_type) > 255
    ):
        raise InvalidInput(f"content type {shown(content_type)} must be printable ASCII like 'audio/wav'")
    return content_type


_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "json": "application/json",
}


def content_type_for(key: str, given: str | None) -> str:
    """``given`` (checked), else the type the key's extension names, else ``application/octet-stream``:
    always sent, so a server does not pick one of its own."""
    if given is not None:
        return check_content_type(given) or given
    return (
        _TYPES.get(key.rpartition(".")[2].lower(), "application/octet-stream")
        if "." in key
        else ("application/octet-stream")
    )


def check_expiry(expires: object) -> int:
    """Whole seconds (any integer: np.int64 too) as a plain int."""
    whole = whole_number(expires)
    if whole is None or not 1 <= whole <= MAX_URL_SECONDS:
        raise InvalidInput(
            f"expires={shown(expires)} must be whole seconds from 1 to {MAX_URL_SECONDS} (7 days)"
        )
    return whole


PRESIGNED_METHODS = {"GET": "get_object", "HEAD": "head_object"}
"""The methods a presigned URL is made for, and the S3 operation each signs."""


def check_url_method(method: object) -> str:
    """``"GET"`` or ``"HEAD"``, the methods a presigned URL reads with."""
    if not isinstance(method, str) or method not in PRESIGNED_METHODS:
        raise InvalidInput(f"method={shown(method)} must be 'GET' or 'HEAD'")
    return method


def check_chunk_size(chunk_size: object, what: str = "chunk_size", unit: str = "bytes") -> int:
    """A positive whole number (any integer: np.int64 too) as a plain int."""
    whole = whole_number(chunk_size)
    if whole is None or whole < 1:
        raise InvalidInput(f"{what}={shown(chunk_size)} must be a positive whole number of {unit}")
    return whole


def chunks(data: Source, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The bytes of a put's source, in pieces of at most ``size`` (a file is read ``size`` at a time)."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = _flat(data)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
    elif isinstance(data, io.IOBase) or hasattr(data, "read"):
        reader = data.read
        while piece := reader(size):
            if not isinstance(piece, bytes | bytearray):
                raise InvalidInput("the file given to put must be opened in binary mode")
            yield bytes(piece)
    elif isinstance(data, str):
        raise InvalidInput("put takes bytes, a binary file or an iterable of bytes, not a str")
    elif isinstance(data, Iterable):
        for piece in data:
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise InvalidInput(f"put's chunks must be bytes, not {type(piece).__name__}")
            view = _flat(piece)
            for start in range(0, len(view), size):
                yield bytes(view[start : start + size])
    else:
        raise InvalidInput(
            f"put takes bytes, a binary file or an iterable of bytes, not {type(data).__name__}"
        )


def _flat(data: bytes | bytearray | memoryview) -> memoryview:
    """The bytes of ``data`` as one flat view; a strided view (``memoryview(b)[::2]``) is copied first: a
    cast of it raised TypeError (a bucket's put, which takes ``bytes(data)``, stored it)."""
    view = memoryview(data)
    return (view if view.c_contiguous else memoryview(view.tobytes())).cast("B")


def verified(pieces: Iterator[bytes], where: str, expected: str | None) -> Iterator[bytes]:
    """``pieces`` passed through, hashed; ``ChecksumMismatch`` after the last one if the hash differs."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
        yield piece
    if expected is not None and digest.hexdigest() != expected:
        raise ChecksumMismatch(
            f"{where}: the bytes read hash to sha256 {digest.hexdigest()}, not the recorded {expected}; "
            "the object was changed or damaged after it was written"
        )


class Opened(Iterator[bytes]):
    """The chunks of an object opened for reading, as ``get`` returns them: ``close()`` releases the file or
    the response it holds at once, before its first chunk too, as its end, its error and its garbage
    collection do. (``get`` returned a generator, whose ``finally`` does not run unless it was started: a
    read closed or dropped before its first chunk, or handed to a put that refused it before reading it,
    as ``copy_files`` does at a ``KeyConflict``, left a file descriptor open for good.)"""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], object]) -> None:
        self._chunks: Iterator[bytes] = chunks
        self._release: Callable[[], object] | None = release

    def __iter__(self) -> Opened:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:  # its end (StopIteration), a ChecksumMismatch, a failed read
            self.close()
            raise

    def close(self) -> None:
        release, self._release = self._release, None
        try:
            getattr(self._chunks, "close", lambda: None)()
        finally:
            if release is not None:
                release()

    def __del__(self) -> None:
        self.close()


def put_marked(
    files: FileStore, key: str, data: BinaryIO | bytes, generation_id: str, *,
    content_type: str | None = None, metadata: Mapping[str, str] | None = None,
) -> ObjectInfo:  # fmt: skip
    """A conditional create at ``key``, marked with the generation's id (``GENERATION_FIELD``); over an object
    so marked, a replace. Call it holding the generation's row lock, its file not yet recorded: an object
    marked with its id is then what an earlier attempt left when its process died between its put and its
    commit (a retry's bytes may differ: Vorbis and Opus encodes do). Any other object at the key stays as it
    was (``ObjectExists``)."""
    marked = {**(metadata or {}), GENERATION_FIELD: generation_id}
    try:
        return files.put(key, data, content_type=content_type, metadata=marked)
    except ObjectExists as exc:
        if not marked_by(files, key, exc, generation_id):
            raise
    if not isinstance(data, bytes):
        data.seek(0)
    return files.put(key, data, content_type=content_type, metadata=marked, overwrite=True)


def briefly(files: FileStore) -> FileStore:
    """``files`` for a cleanup made while a lock is held: an ``S3FileStore`` as a view making one attempt
    per request with short timeouts (``S3FileStore._briefly``), so that an endpoint that is down costs the
    lock seconds, not every retry's wait; any other store as it is."""
    brief = getattr(files, "_briefly", None)
    return files if brief is None else cast(FileStore, brief())


def unput(files: FileStore, key: str, generation_id: str, exc: BaseException) -> bool | None:
    """After ``exc`` ended a ``put_marked`` at ``key`` for ``generation_id`` (or landed as it returned,
    before the caller noted the object as placed), made holding the generation's row lock, the lock still
    held: a put that failed without saying whether it wrote the object (its reply lost, then each retry
    failed: ``StoreUnavailable``, a plain ``StorageError``; not a refusal), or that was interrupted (a
    Ctrl-C's ``KeyboardInterrupt``, another ``BaseException`` that is no ``Exception``), may have left it at
    ``key``, where no row records it: removed, best effort, if it is marked with ``generation_id``
    (anything else there is left alone). A ``HEAD`` (and the ``DELETE``) on that path only, each one
    attempt with short timeouts (``briefly``). True: removed (a note on ``exc`` says so); False: nothing of
    it there (or a refusal: nothing written); None: unknown (the check failed: a note says so)."""
    if isinstance(exc, ObjectExists | ChecksumMismatch | InvalidInput):  # refused: nothing written
        return False
    if isinstance(exc, Exception) and not isinstance(exc, StorageError):
        return False
    try:
        brief = briefly(files)  # InvalidInput for a closed store: unknown, as a failed check
        if brief.head(key).metadata.get(GENERATION_FIELD) != generation_id:
            return False
        brief.delete(key)
    except ObjectNotFound:
        return False
    except Exception as cleanup:
        exc.add_note(
            f"whether the failed put wrote {key} in {files.url} is unknown ({type(cleanup).__name__}); if it "
            "did, reconcile reports it (an orphan) and a next attempt replaces it"
        )
        return None
    exc.add_note(f"{key}, which the failed put may have written, was removed from {files.url}")
    return True


def marked_by(files: FileStore, key: str, refused: ObjectExists, generation_id: str) -> bool:
    """Whether the object at ``key`` that ``refused`` a conditional put is marked with ``generation_id``
    (``GENERATION_FIELD``; a ``KeyConflict``: no object there to be marked)."""
    if isinstance(refused, KeyConflict):
        return False
    return files.head(key).metadata.get(GENERATION_FIELD) == generation_id


__all__ = [
    "CHUNK_SIZE",
    "MAX_KEY_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_NAMES",
    "MAX_URL_SECONDS",
    "PRESIGNED_METHODS",
    "ChecksumMismatch",
    "FileStore",
    "KeyConflict",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "Opened",
    "Source",
    "StoreUnavailable",
    "Upload",
    "check_key",
    "check_metadata",
    "check_prefix",
    "check_upload",
    "check_url_method",
    "marked_by",
    "put_marked",
    "verified",
]

"""Hand a completed generation's audio to listeners: a URL with an expiry, or its bytes streamed and verified.

``Delivery(store)`` (sync) and ``AsyncDelivery(astore)`` (async) read where the row says the file is
(migration 0006: storage URL, key, SHA-256), open that file store once per URL and keep it, and ask it for
a presigned GET (S3) or a ``file://`` URL (local), or for the bytes, checked against the row's checksum as
they stream. Each call takes a generation (or its id) for its master, or a recorded ``Rendition`` for that
file, which lies in its master's store (its key, SHA-256 and size from the rendition's row). Both share
``_Locator``: only the row read and the file calls differ (``AsyncFileStore`` runs the same file calls in a
worker thread, and ``AsyncDelivery`` opens a row's file store in one too). See docs/storage.md.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import store as stores
from . import validate
from .aio import AsyncStore
from .errors import InvalidInput, InvalidTransition, StorageError, shown
from .filestore import (
    S3_OPTIONS,
    AsyncFileStore,
    FileStore,
    LocalFileStore,
    ObjectNotFound,
    check_filestore,
    open_filestore,
)
from .filestore.base import CHUNK_SIZE
from .models import Generation, Status
from .ops.renditions import Rendition
from .ops.storage import StoredFile, get_storage
from .storage_names import local_path
from .store import Store

Root = str | os.PathLike[str] | FileStore
"""A file store given by the caller: a folder path, ``file://`` or ``s3://`` URL, or an open ``FileStore``."""
Audio = Generation | Rendition | str
"""What a delivery call reads: a generation (or its id) for its master, or one of its recorded renditions."""


@dataclass(frozen=True, slots=True)
class Located:
    """Where a generation's file is: the file store, the key in it and the SHA-256 the row recorded."""

    files: FileStore
    key: str
    checksum: str | None
    size: int | None


def _file_stores(files: object) -> list[FileStore]:
    """``files=`` as given to a ``Delivery`` or a render: an iterable of ``FileStore`` objects, else
    InvalidInput (one store, None or a URL given where a list of stores goes: a bare TypeError before)."""
    if isinstance(files, FileStore | str | bytes) or not isinstance(files, Iterable):
        raise InvalidInput(
            f"files must be an iterable of FileStore objects ([store]), got {type(files).__name__}"
        )
    given = list(files)
    for each in given:
        if not isinstance(each, FileStore):
            raise InvalidInput(f"files must hold FileStore objects, got {type(each).__name__}")
    return given


class _Locator:
    """The file stores rows name, opened once per storage URL (thread-safe), and the caller's own.

    ``defer``: an ``s3://`` root is checked now (``check_filestore``: a bad URL or option raises here) and
    opened by the first ``open_for`` of a row under it (its client's session, config files and credentials
    block: an event loop runs that call in a worker thread), once for the threads asking at the same time."""

    def __init__(
        self,
        root: Root | None,
        files: Iterable[FileStore],
        options: Mapping[str, Any] | None,
        *,
        defer: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._opened: list[FileStore] = []
        if options is not None and not isinstance(options, Mapping):
            raise InvalidInput(f"options must be a mapping of S3 settings, got {type(options).__name__}")
        self._options = dict(options or {})
        unknown = [name for name in self._options if name not in S3_OPTIONS]
        if unknown:  # open_filestore's bare TypeError at each read of a row in a bucket, else
            raise InvalidInput(
                f"options {', '.join(shown(name) for name in unknown)} are no S3 setting: give "
                f"{', '.join(S3_OPTIONS)}"
            )
        self._by_url: dict[str, FileStore] = {}
        for given in _file_stores(files):
            self._by_url[_canonical(given.url)] = given
        self._given = frozenset(self._by_url)  # the caller's: a row naming one uses it, root or not
        self._has_root = root is not None
        self._root: FileStore | None = None
        self._root_url: str | None = None  # a deferred root's URL, until it is opened
        if root is not None and defer and not isinstance(root, FileStore):
            text, local = self._text(root)
            if not local:
                check_filestore(text, **self._options)
                self._root_url = text
        if root is not None and self._root_url is None:
            self._root = self._open(root)

    @staticmethod
    def _text(root: str | os.PathLike[str]) -> tuple[str, bool]:
        """A root given by path or URL, and whether it is a local folder."""
        text = _root_text(root)
        return text, "://" not in text or text.startswith("file:")

    def _open(self, root: Root) -> FileStore:
        if isinstance(root, FileStore):
            return root
        text, local = self._text(root)
        opened = open_filestore(text, create=False, **({} if local else self._options))
        self._opened.append(opened)
        return opened

    def _under_root(self, stored: StoredFile) -> bool:
        """Whether the row's file is read under the root: no storage URL, or a ``file://`` one that no store
        in ``files`` serves, when a root is given."""
        url = stored.storage_url
        return url is None or (
            url.startswith("file:") and self._has_root and _canonical(url) not in self._given
        )

    def locate(self, stored: StoredFile) -> Located:
        """The file store and key of a completed generation's file."""
        return self.find(stored) or self.open_for(stored)

    def find(self, stored: StoredFile) -> Located | None:
        """``locate`` without opening a file store: None when the row's store is not open yet (``open_for``
        opens it). Takes no lock and makes no blocking call: an event loop's thread runs it."""
        if stored.status is not Status.COMPLETED or stored.key is None:
            raise InvalidTransition(
                f"generation {stored.generation_id} is {stored.status}: only a completed one has audio",
                current=stored.status.value,
            )
        url = stored.storage_url
        if self._under_root(stored):
            if not self._has_root:
                raise InvalidInput(
                    f"generation {stored.generation_id} was recorded before storage URLs (its file is "
                    f"{stored.key!r} under the output root): give root="
                )
            root = self._root  # None until a deferred root is opened (open_for)
            return None if root is None else Located(root, stored.key, stored.checksum, stored.size)
        assert url is not None
        files = self._by_url.get(_canonical(url))  # one dict read: atomic, the lock's writes are whole
        return None if files is None else Located(files, stored.key, stored.checksum, stored.size)

    def open_for(self, stored: StoredFile) -> Located:
        """``locate`` of a row ``find`` could not place, whose store it opens, once per URL (or the deferred
        root, once): several threads asking first for one wait for the one that opens it (blocking: an event
        loop runs this in a worker thread). A failed opening raises, and the next call tries again."""
        url = stored.storage_url
        assert stored.key is not None, "find raised for a row without a key"
        if self._under_root(stored):
            with self._lock:
                root = self._root
                if root is None:
                    assert self._root_url is not None, "find placed the rows under an open root"
                    root = self._root = self._open(self._root_url)
            return Located(root, stored.key, stored.checksum, stored.size)
        assert url is not None
        with self._lock:
            files = self._by_url.get(_canonical(url))
            if files is None:
                try:
                    files = self._by_url[_canonical(url)] = self._open(url)
                except StorageError as exc:
                    if not url.startswith("file:"):
                        raise
                    raise StorageError(  # another host's root, or one moved: not a file gone missing
                        f"generation {stored.generation_id}'s file is in {url}, which this host cannot open "
                        f"({exc}): give root= (this host's mount of that folder) or files="
                    ) from exc
        return Located(files, stored.key, stored.checksum, stored.size)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for files in opened:
            files.close()


def require_store(store: object, what: str) -> Store:
    """``store`` if it is a ``Store``, for ``what`` (a sync call); ``InvalidInput`` otherwise (an
    ``AsyncStore`` hands back coroutines where rows are expected: a bare AttributeError further on)."""
    advice = "open a Store on the same URL and call this in a thread"
    return stores.require_store(
        store,
        f"{what} takes a musicstore Store",
        advice + (", or use AsyncDelivery" if what == "Delivery" else ""),
    )


def _canonical(url: str) -> str:
    return url.rstrip("/")


def _generation_id(audio: Audio) -> str:
    if isinstance(audio, Rendition):
        return audio.generation_id
    return audio.id if isinstance(audio, Generation) else audio


def _path(audio: Audio, found: Located) -> Path:
    """The local path of a located file (``StorageError`` when its store is not a local folder)."""
    if not isinstance(found.files, LocalFileStore):
        raise StorageError(f"generation {_generation_id(audio)} is in {found.files.url}, not on disk")
    return found.files.root / found.key


def _missing(audio: Audio, exc: ObjectNotFound) -> ObjectNotFound:
    """The read of a completed generation's file that is not there, naming it and what finds such rows."""
    what = f"{audio.format} rendition {audio.id}" if isinstance(audio, Rendition) else "file"
    return ObjectNotFound(
        f"generation {_generation_id(audio)} is completed but its {what} is missing: {exc} (`musicstore "
        "reconcile` reports the rows whose files are gone)"
    )


def _of(audio: Audio, master: Located) -> Located:
    """``master``'s location, or for a rendition its file beside it in the same store."""
    if not isinstance(audio, Rendition):
        return master
    return replace(master, key=audio.storage_key, checksum=audio.checksum, size=audio.file_size_bytes)


class Delivery:
    """URLs and streamed reads of completed generations' audio, for a sync ``Store``.

    ``root``: where rows recorded before storage URLs keep their files, and this host's mount of the local
    root every other ``file://`` row names (its key read under ``root``, whatever folder the row names);
    ``files``: open file stores to use for rows whose storage URL is theirs (before ``root``); ``options``:
    S3 settings (``endpoint_url``, credentials...) for the stores opened from rows' ``s3://`` URLs.
    """

    def __init__(
        self,
        store: Store,
        *,
        root: Root | None = None,
        files: Iterable[FileStore] = (),
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = require_store(store, "Delivery")
        self._locator = _Locator(root, files, options)

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file stores this opened (not the ``Store``, nor the caller's file stores)."""
        self._locator.close()

    def locate(self, audio: Audio) -> Located:
        """Where the generation's file (or the rendition's) is (``NotFound``; ``InvalidTransition`` unless
        completed)."""
        return _of(audio, self._locator.locate(self.store.run(get_storage, _generation_id(audio))))

    def locate_stored(self, stored: StoredFile) -> Located:
        """Where the file of a storage row already read is (no read of its own: a caller that must act on
        the place it read, as a render recording against it, locates that one)."""
        return self._locator.locate(stored)

    def url_for(self, generation: Audio, *, expires: int = 3600) -> str:
        """A URL reading the file for ``expires`` seconds: a presigned GET (S3), a ``file://`` URL (local)."""
        found = self.locate(generation)
        return found.files.presigned_url(found.key, expires=expires)

    def open_audio(self, generation: Audio, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The file's bytes in chunks (opened now: ``ObjectNotFound`` here), hashed as they pass:
        ``ChecksumMismatch`` after the last chunk when they differ from the row's SHA-256."""
        found = self.locate(generation)
        try:
            return found.files.get(found.key, checksum=found.checksum, chunk_size=chunk_size)
        except ObjectNotFound as exc:
            raise _missing(generation, exc) from exc

    def read_audio(self, generation: Audio) -> bytes:
        """The whole file, verified (held in memory: for a clip, not an album)."""
        return b"".join(self.open_audio(generation))

    def path_for(self, generation: Audio) -> Path:
        """The local file of a generation on a local root (``StorageError`` for an object store)."""
        return _path(generation, self.locate(generation))


class AsyncDelivery:
    """``Delivery`` for an ``AsyncStore``: the same lookups, the file calls in a worker thread.

    Nothing here blocks the event loop: an ``s3://`` root is checked by the constructor (a bad URL or option
    raises there, as ``Delivery``'s does) but its client (boto3's session: config files, credentials,
    endpoint) is made by the first call that reads under it, in a worker thread, one for the calls that race
    to be first; an error of that making (``StorageError``) is raised by that call, and the next one tries
    again. A local root is opened by the constructor (a folder looked at)."""

    def __init__(
        self,
        store: AsyncStore,
        *,
        root: Root | None = None,
        files: Iterable[FileStore] = (),
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(store, AsyncStore):
            hint = "; for a Store use Delivery" if isinstance(store, Store) else ""
            got = type(store).__name__
            raise InvalidInput(f"AsyncDelivery takes a musicstore AsyncStore, got {got}{hint}")
        self.store = store
        self._locator = _Locator(root, files, options, defer=True)

    async def __aenter__(self) -> AsyncDelivery:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file stores this opened (not the ``AsyncStore``, nor the caller's file stores)."""
        self._locator.close()

    async def locate(self, audio: Audio) -> Located:
        """``Delivery.locate``, awaited: a row's file store not opened yet, or the ``s3://`` root (an S3
        client: boto3's session, credentials and endpoint, blocking), is opened in a worker thread, once for
        the calls that ask for it at the same time (they wait for that one), while the event loop runs on."""
        stored = await self.store.run(get_storage, _generation_id(audio))
        found = self._locator.find(stored)
        if found is None:
            found = await asyncio.to_thread(self._locator.open_for, stored)
        return _of(audio, found)

    async def url_for(self, generation: Audio, *, expires: int = 3600) -> str:
        found = await self.locate(generation)
        return await AsyncFileStore(found.files).presigned_url(found.key, expires=expires)

    async def open_audio(self, generation: Audio, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Opens the file now, returns its chunks, verified: ``async for chunk in await d.open_audio(g)``."""
        found = await self.locate(generation)
        try:
            return await AsyncFileStore(found.files).get(
                found.key, checksum=found.checksum, chunk_size=chunk_size
            )
        except ObjectNotFound as exc:
            raise _missing(generation, exc) from exc

    async def read_audio(self, generation: Audio) -> bytes:
        return b"".join([chunk async for chunk in await self.open_audio(generation)])

    async def path_for(self, generation: Audio) -> Path:
        """The local file of a generation on a local root (``StorageError`` for an object store)."""
        return _path(generation, await self.locate(generation))


def writer_delivery(
    store: Store, generation: Generation, where: StoredFile, root: Root | None, files: Sequence[FileStore]
) -> Delivery:
    """For ``musicstore.rendering``'s writers: a ``Delivery`` that finds the master of the storage row
    ``where``: ``root`` for a row without a storage URL or with a local one (this host's mount), and as the
    store of rows whose URL is its own; other URLs opened from the row (or taken from ``files``). A local
    root that is a folder of this host other than the one a row's ``file://`` URL names, which this host
    has too, is no mount of it: the row's folder is used (``_another_folder_here``)."""
    given = _file_stores(files)
    if root is not None and not isinstance(root, FileStore):
        root = _root_text(root)
    if root is not None and _another_folder_here(where.storage_url, root):
        root = None  # copy-files moved the row to a folder of this host: read and write it there
    if isinstance(root, FileStore):
        given.append(root)
    elif root is not None:
        text = _root_text(root)
        url = where.storage_url
        if url is not None and not url.startswith("file:"):
            root = None if "://" not in text or text.startswith("file:") else root  # the row says where
        elif "://" not in text and not Path(validate.os_path(text, "root")).is_dir():  # no ENAMETOOLONG
            raise InvalidInput(
                f"the output root {text} is not a folder: the master of {generation.id} is not there"
            )
    try:
        return Delivery(store, root=root, files=given)
    except StorageError as exc:
        raise InvalidInput(f"cannot read masters under {root}: {exc}") from exc


def _root_text(root: object) -> str:
    """A root given by path or URL, as its text; ``InvalidInput`` for another type, an ``__fspath__`` that
    raises or gives bytes, or a NUL (a bare RuntimeError, TypeError or ValueError before)."""
    if not isinstance(root, str | os.PathLike):
        raise InvalidInput(
            f"root must be a path, a file:// or s3:// URL or a FileStore, got {type(root).__name__}"
        )
    try:
        text = os.fspath(root)
    except Exception as exc:  # an os.PathLike of the caller's whose __fspath__ fails
        raise InvalidInput(f"root: its __fspath__ raised {type(exc).__name__}") from None
    if not isinstance(text, str) or "\x00" in text:
        raise InvalidInput(f"root must be a str path or URL without NUL, got a {type(root).__name__}")
    return text


def _another_folder_here(url: str | None, root: Root) -> bool:
    """Whether a row's ``file://`` URL names a folder of this host other than the local folder ``root``:
    ``root=`` stands for the row's folder only as this host's mount of it (a row written on another host,
    its folder not here). A render writes beside the master, so it must reach the folder the row names:
    given the folder a ``copy_files`` moved the row from, it read the copy left there and put its
    renditions beside it, recorded as the new folder's (dangling there), or said the master was missing."""
    if url is None or not url.startswith("file:"):
        return False
    if isinstance(root, LocalFileStore):
        text: str = str(root.root)
    elif isinstance(root, str | os.PathLike) and "\x00" not in str(root):
        text = os.fspath(root)
        if "://" in text and not text.startswith("file:"):
            return False
    else:
        return False
    try:
        mount = local_path(text) if text.startswith("file:") else Path(text)
        return mount.is_dir() and folder_here(url) and not os.path.samefile(local_path(url), mount)
    except (InvalidInput, OSError, ValueError):
        return False


def folder_here(url: str) -> bool:
    """Whether a row's ``file://`` URL names a folder this host has."""
    try:
        return local_path(url).is_dir()
    except (InvalidInput, OSError, ValueError):
        return False


__all__ = ["AsyncDelivery", "Audio", "Delivery", "Located", "folder_here", "require_store", "writer_delivery"]

"""The local backend: objects are files under one folder (the output root), reached without following links.

A put writes a temp file beside the target (``.<name>.<random>.tmp``, the name reconcile knows as an
export in flight), fsyncs it, and puts it in place in one step: ``link`` for a conditional create (the
kernel refuses an existing name: two processes can never both create one key) or ``rename`` when
``overwrite``; then the folder is fsynced. New folders are created and their parents fsynced. The checksum,
content type and metadata are kept in extended attributes set on the temp file, so they appear with it
(``xattrs``). Every folder below the root is opened relative to its parent with ``O_NOFOLLOW``: no symlink
below the root is followed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from .. import interrupt, validate
from ..errors import InvalidInput, StorageError
from ..storage_names import TEMP_NAME, check_checksum, check_key, check_prefix
from .base import (
    CHUNK_SIZE,
    KeyConflict,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    Opened,
    Source,
    Upload,
    check_chunk_size,
    check_expiry,
    check_metadata,
    check_overwrite,
    check_upload,
    check_url_method,
    chunks,
    content_type_for,
    verified,
)
from .folder_names import NAME_MAX_BYTES, check_names, check_root, fits, temp_name
from .xattrs import (
    XATTR_CHECKSUM,
    XATTR_CONTENT_TYPE,
    XATTR_METADATA,
    XATTR_NAME,
    attribute,
    decode_metadata,
    set_attributes,
)

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_symlink(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class LocalFileStore:
    """Objects as files under ``root`` (created unless ``create=False``)."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(validate.os_path(root, "root", empty=True)).absolute()  # a str path the OS takes
        validate.flag(create, "create")
        check_root(str(self.root))
        try:
            if create:
                self.root.mkdir(parents=True, exist_ok=True)
            is_folder = self.root.is_dir()
        except OSError as exc:
            raise StorageError(f"cannot use {self.root} as the output root: {exc.strerror}") from exc
        if not is_folder:
            missing = not create and not self.root.exists() and not self.root.is_symlink()
            raise StorageError(
                f"the output root {self.root} {'does not exist' if missing else 'is not a folder'}"
            )
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalFileStore({str(self.root)!r})"

    def __enter__(self) -> LocalFileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing held open between calls."""

    # --- folders and files, reached relative to the root ------------------------------------------------

    def _folder(self, segments: list[str], key: str, *, create: bool) -> int | None:
        """An open descriptor of the folder ``segments`` (the caller closes it); None if missing."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            depth = 0
            for name in segments:
                depth += 1
                try:
                    child = os.open(name, _FOLDER, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    try:
                        os.mkdir(name, dir_fd=fd)
                    except FileExistsError:
                        pass
                    else:
                        os.fsync(fd)  # the new folder's entry survives a crash with the file put in it
                    child = os.open(name, _FOLDER, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            try:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    if not create and not _is_symlink(name, fd):
                        return None  # a file where a folder would be: no object below it (as on S3)
                    if not _is_symlink(name, fd):
                        there = "/".join(segments[:depth])
                        raise KeyConflict(
                            f"{self.url}/{key}: a folder on its way is a symlink or a file: the object "
                            f"{there!r}, which cannot be a folder of objects too (docs/storage.md)"
                        ) from exc
                    raise StorageError(
                        f"{key}: a folder on its way is a symlink or a file (not followed)"
                    ) from exc
                raise
            finally:
                os.close(fd)
        return fd

    def _open(self, key: str) -> tuple[int, os.stat_result]:
        """The regular file at ``key``, opened for reading, and its stat."""
        *folders, name = check_key(key).split("/")
        if not fits(key):
            raise ObjectNotFound(f"{self.url}/{key}: no such object (a name over {NAME_MAX_BYTES} bytes)")
        try:
            folder = self._folder(folders, key, create=False)
            if folder is None:
                raise ObjectNotFound(f"{self.url}/{key}: no such object")
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
            finally:
                os.close(folder)
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.url}/{key}: no such object") from None
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            if exc.errno == errno.ELOOP:
                raise StorageError(f"{key} is a symlink (not followed)") from exc
            raise self._failure("reading", key, exc) from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise ObjectNotFound(f"{self.url}/{key}: no such object (a folder or special file is there)")
        return fd, info

    def _failure(self, doing: str, key: str, exc: OSError) -> StorageError:
        code = errno.errorcode.get(exc.errno or 0, "")
        return StorageError(f"{doing} {self.url}/{key} failed: {exc.strerror or exc} ({code})")

    # --- the interface ----------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: Source,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """Write ``data`` at ``key`` atomically and durably (see the module); ``ObjectExists`` unless
        ``overwrite`` when a file is there."""
        *folders, name = check_names(check_key(key)).split("/")
        meta = check_metadata(metadata)
        check_overwrite(overwrite)
        content_type = content_type_for(key, content_type)
        temp = temp_name(name)
        try:
            folder = self._folder(folders, key, create=True)
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise self._failure("creating the folder of", key, exc) from exc
        assert folder is not None
        created = reading = False  # reading: the source's own OSError is raised as is (as S3's put does)
        try:
            self._no_folder_at(folder, name, key)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with contextlib.ExitStack() as closing:
                with interrupt.deferred():  # a Ctrl-C as the temp file is made: raised once it is noted
                    fd = os.open(temp, flags, 0o666, dir_fd=folder)
                    closing.callback(os.close, fd)
                    created = reading = True
                if temp[1:-13] != name:  # ".<name>.<8 random>.tmp"
                    set_attributes(fd, None, None, {}, name)  # shortened: uploads() finds the whole name
                digest, size = hashlib.sha256(), 0
                for piece in chunks(data):
                    reading = False
                    digest.update(piece)
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view) :]
                    size, reading = size + len(piece), True
                reading = False
                os.fsync(fd)
                checksum = digest.hexdigest()
                set_attributes(fd, checksum, content_type, meta)
                modified = _when(os.fstat(fd).st_mtime)
            if overwrite:
                try:
                    os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                except IsADirectoryError:
                    self._no_folder_at(folder, name, key)  # made since it was checked (a put below it)
                    raise
            else:
                try:
                    os.link(temp, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
                except FileExistsError:
                    self._no_folder_at(folder, name, key)  # made since it was checked: KeyConflict
                    there = self._same(key, checksum, size)
                    if there is None:
                        raise ObjectExists(
                            f"{self.url}/{key} exists already; it was left unchanged"
                        ) from None
                    return there  # these very bytes: a retry, not a conflict (the temp goes in finally)
                os.unlink(temp, dir_fd=folder)
            created = False
            os.fsync(folder)
        except OSError as exc:
            if isinstance(exc, StorageError) or reading:
                raise
            raise self._failure("writing", key, exc) from exc
        finally:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=folder)
            os.close(folder)
        return ObjectInfo(key, size, checksum, content_type, meta, modified)

    def _no_folder_at(self, folder: int, name: str, key: str) -> None:
        """``KeyConflict`` if a folder is at ``key``'s name (one holding objects; or an empty one, which a
        delete or a failed put left: it stays as it is, a bucket has none)."""
        try:
            is_folder = stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return
        if is_folder:
            raise KeyConflict(
                f"{self.url}/{key} is a folder (of other objects, or one they left), which cannot be an "
                "object too (docs/storage.md); nothing was changed"
            )

    def _same(self, key: str, checksum: str, size: int) -> ObjectInfo | None:
        """The object at ``key`` if it holds these bytes (by its recorded checksum), else None."""
        try:
            there = self.head(key)
        except StorageError:
            return None
        return there if (there.checksum, there.size) == (checksum, size) else None

    def _info(self, key: str, fd: int, info: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key,
            info.st_size,
            attribute(fd, XATTR_CHECKSUM),
            attribute(fd, XATTR_CONTENT_TYPE),
            decode_metadata(attribute(fd, XATTR_METADATA)),
            _when(info.st_mtime),
        )

    def head(self, key: str) -> ObjectInfo:
        fd, info = self._open(key)
        try:
            return self._info(key, fd, info)
        finally:
            os.close(fd)

    def get(self, key: str, *, checksum: str | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The file's bytes in chunks (the file is opened now, read as the chunks are taken); see
        ``FileStore.get`` for the checksum."""
        check_checksum(checksum)
        chunk_size = check_chunk_size(chunk_size)  # a plain int (np.int64 too)
        fd, info = self._open(key)
        try:
            expected = checksum or attribute(fd, XATTR_CHECKSUM)
        except BaseException:
            os.close(fd)
            raise
        read = self._read(fd, key, chunk_size, info.st_size)
        return Opened(verified(read, f"{self.url}/{key}", expected), lambda: os.close(fd))  # closes fd once

    def _read(self, fd: int, key: str, chunk_size: int, size: int) -> Iterator[bytes]:
        """The file's chunks, each read asking no more than is left (the OS's buffer is that size)."""
        try:
            while piece := os.read(fd, min(chunk_size, max(size, CHUNK_SIZE), 1 << 30)):
                size -= len(piece)
                yield piece
        except OSError as exc:
            raise self._failure("reading", key, exc) from exc

    def delete(self, key: str) -> bool:
        return self._remove(check_key(key))

    def _remove(self, key: str) -> bool:
        if not fits(key):
            return False  # no file has such a name
        *folders, name = key.split("/")
        try:
            folder = self._folder(folders, key, create=False)
            if folder is None:
                return False
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    return False  # a folder is no object (head and get say so too)
                if not stat.S_ISREG(info.st_mode):
                    raise StorageError(f"{self.url}/{key} is not a regular file; it was not removed")
                os.unlink(name, dir_fd=folder)
                os.fsync(folder)
            finally:
                os.close(folder)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise self._failure("removing", key, exc) from exc
        return True

    def _walk(self, prefix: str, *, temps: bool) -> Iterator[tuple[str, os.stat_result]]:
        """(key, stat) of each regular file (or each temp file) whose key starts with ``prefix``, in the
        order S3 lists keys (bytewise); one folder's names are held at a time."""
        try:
            root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            yield from self._walk_folder(root, "", prefix, temps)
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"listing {self.url} failed: {exc.strerror or exc}") from exc

    def _walk_folder(
        self, fd: int, base: str, prefix: str, temps: bool
    ) -> Iterator[tuple[str, os.stat_result]]:
        try:
            with os.scandir(fd) as scan:
                entries = []
                for entry in scan:
                    path = base + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if (path + "/").startswith(prefix) or prefix.startswith(path + "/"):
                            entries.append((os.fsencode(path + "/"), entry.name, True))
                    elif entry.is_file(follow_symlinks=False):
                        entries.append((os.fsencode(path), entry.name, False))
            entries.sort()
            for _, name, is_folder in entries:
                if is_folder:
                    try:
                        child = os.open(name, _FOLDER, dir_fd=fd)
                    except OSError:
                        continue  # gone, or swapped for a symlink, since the scan
                    yield from self._walk_folder(child, f"{base}{name}/", prefix, temps)
                    continue
                match = TEMP_NAME.fullmatch(name)
                if temps:
                    if not match:
                        continue
                    key = base + match["name"]
                else:
                    key = base + name
                    if match or not key.startswith(prefix):
                        continue
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield (base + name if temps else key), info
        finally:
            os.close(fd)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every file whose key starts with ``prefix``, in key order (temp files and symlinks left out); the
        arguments are checked at the call, as S3's are."""
        check_prefix(prefix)
        check_chunk_size(page_size, "page_size", "keys")
        return (
            ObjectInfo(key, info.st_size, modified=_when(info.st_mtime))
            for key, info in self._walk(prefix, temps=False)
        )

    def uploads(self) -> Iterator[Upload]:
        """Temp files of writes that never finished (a put killed midway); ``upload_id``: the temp's path."""
        for path, info in self._walk("", temps=True):
            folder, _, name = path.rpartition("/")
            match = TEMP_NAME.fullmatch(name)
            assert match is not None
            whole = self._kept_name(path) or match["name"]
            yield Upload(f"{folder}/{whole}" if folder else whole, path, _when(info.st_mtime))

    def _kept_name(self, path: str) -> str | None:
        """The whole file name a temp file with a shortened name was written for (else None)."""
        *folders, name = path.split("/")
        with contextlib.suppress(OSError):
            folder = self._folder(folders, path, create=False)
            if folder is None:
                return None
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
            finally:
                os.close(folder)
            try:
                return attribute(fd, XATTR_NAME)
            finally:
                os.close(fd)
        return None

    def abort(self, upload: Upload) -> None:
        """Remove the temp file of an unfinished write."""
        path = check_key(check_upload(upload).upload_id, "upload id")
        if not TEMP_NAME.fullmatch(path.rpartition("/")[2]):
            raise InvalidInput(f"{path!r} is not the temp file of a write")
        self._remove(path)

    def presigned_url(self, key: str, *, expires: int = 3600, method: str = "GET") -> str:
        """The ``file://`` URL of the file, whatever the method (no request is made; it does not expire)."""
        check_key(key)
        check_expiry(expires)
        check_url_method(method)
        return (self.root / key).as_uri()


__all__ = ["LocalFileStore"]

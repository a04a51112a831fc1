"""The store ``copy_files`` copies to, opened so that a dry run makes nothing: not even its folder; what a
dry run counts for each object, as the run would; how an object's bytes are compared; whether the copies are
still there when the run records them."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import cast

from ..errors import StorageError
from ..filestore import FileStore, KeyConflict, LocalFileStore, ObjectInfo, ObjectNotFound, open_filestore
from ..filestore.base import briefly
from ..storage_names import SCHEME, local_path
from ..store import Store
from .scan import OwnRows, rows_by_file_paths


class _FolderToBe:
    """A local folder a dry run would copy to that is not there yet: it holds no object. Only what a dry
    run asks of its target (``url``, ``head``, ``close``); the real run makes the folder."""

    def __init__(self, url: str) -> None:
        self.url = url

    def head(self, key: str) -> ObjectInfo:
        raise ObjectNotFound(f"{self.url}/{key}: no such object")

    def close(self) -> None:
        """Nothing held open."""


def open_target(to: str | Path, *, dry_run: bool) -> FileStore:
    """``open_filestore(to)``, which makes a missing folder; with ``dry_run`` a missing folder is left
    unmade (before, a preview to ``/mnt/new/music`` left that folder and its parents behind, empty)."""
    if not dry_run:
        return open_filestore(to)
    try:
        return open_filestore(to, create=False)  # its checks of ``to`` first: a bad one raises as before
    except StorageError:
        text = os.fspath(to)
        scheme = SCHEME.match(text)
        if scheme is not None and scheme[1].lower() != "file":
            raise
        path = Path(text) if scheme is None else local_path(text)
        url = path.absolute().as_uri()
        if path.exists() or path.is_symlink():  # a file, a broken link: not a folder, as the run would say
            raise
        return cast(FileStore, _FolderToBe(url))


def already_in(target: FileStore, origin: FileStore | None) -> Callable[[str | None], bool]:
    """Whether a row (by its ``storage_url``) has its files in the folder ``target`` already, under another
    spelling of it (a symlink to it, ``..``: the same device and inode, as reconcile, cleanup and
    ``only_from`` take a folder); a row that names no store, when its folder ``origin`` is that one. Left
    alone: ``copy_files`` counted their files "already there" and pointed the rows at the new spelling,
    and the docs' next step, deleting the old folder once the target's reconcile is consistent, deleted the
    only copy (``tests/test_maint_hunt_s27.py``). A bucket's rows are told by their URL alone."""
    if not isinstance(target, LocalFileStore):
        return lambda url: False
    own = OwnRows(target.root)
    nameless = origin is not None and own(origin.url)
    return lambda url: nameless if url is None else own(url)


def check_bucket(target: FileStore) -> None:
    """``StoreUnavailable`` when a bucket a dry run copies to is not there, as the run's first put says:
    the dry run asks its target only ``HEAD``s, whose 404 does not tell a missing bucket from a missing
    object (it reported every object as one it would copy). One listing of one key."""
    if not isinstance(target, LocalFileStore | _FolderToBe):
        next(iter(target.list("", page_size=1)), None)


def refuse_conflict(target: FileStore, key: str) -> None:
    """``KeyConflict``, as the real run's put in a folder target raises it, where nothing is at ``key`` but
    a file is at one of its folders or a folder is at the key (before, a dry run counted that row as copied,
    where the run skips it). A bucket has no folders; a folder to be holds nothing."""
    if not isinstance(target, LocalFileStore):
        return
    *folders, name = key.split("/")
    path = target.root
    for depth, segment in enumerate(folders, 1):
        path /= segment
        try:
            mode = path.lstat().st_mode
        except OSError:  # missing (the run makes it), or unreadable (the run says so)
            return
        if not stat.S_ISDIR(mode):  # a symlink on the way: head refused it already
            raise KeyConflict(
                f"{target.url}/{key}: a folder on its way is a symlink or a file: the object "
                f"{'/'.join(folders[:depth])!r}, which cannot be a folder of objects too (docs/storage.md)"
            )
    try:
        mode = (path / name).lstat().st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise KeyConflict(
            f"{target.url}/{key} is a folder (of other objects, or one they left), which cannot be an "
            "object too (docs/storage.md); nothing was changed"
        )


def sha256_of(files: FileStore, key: str) -> str:
    """The SHA-256 of ``key`` in ``files``: the one the store keeps, else read and hashed."""
    kept = files.head(key).checksum
    if kept is not None:
        return kept
    digest = hashlib.sha256()
    for chunk in files.get(key):
        digest.update(chunk)
    return digest.hexdigest()


def holds(files: FileStore, key: str, there: ObjectInfo, size: int, checksum: str) -> bool:
    """Whether ``there`` (the object at ``key``) holds ``size`` bytes hashing to ``checksum``: by the SHA-256
    the store keeps, else read and hashed (a folder without user xattrs keeps none)."""
    return there.size == size and (there.checksum or sha256_of(files, key)) == checksum


def dry_copy(
    origin: FileStore,
    target: FileStore,
    key: str,
    size: int | None,
    checksum: str | None,
    *,
    planned: dict[str, tuple[int, str]],
    gid: str,
    shared: frozenset[str] = frozenset(),
) -> tuple[str, int, str]:
    """What copying ``key`` (a file of generation ``gid``) would do, nothing written: ``("copied", bytes,
    SHA-256)`` or ``("present", 0, SHA-256)``; raises as the run's copy would (the row skipped), in the
    run's order (``relocate._copy_one``): a copy already at the key is kept; else the source's size is
    checked, then the key's folders in the target, then the source is read whole and hashed against the
    row's checksum (or the one the store keeps) as the run streams it into its put: a source of the right
    size and other bytes is refused as the run refuses it. So a dry run reads every object it would copy.

    ``planned`` (key → size and SHA-256) holds the objects this dry run would copy whose name another row
    may name too (not ``<gid>.…``: a master at a custom path, the peaks named after its stem; or one of
    ``shared``, named after its generation and recorded by another row too: ``named_shared``): a later
    row's file at such a key is found there by the run (the earlier row's copy), so it is counted present
    when it holds that row's bytes, and refused as other bytes when not. Other objects named after their
    generation are not held: memory grows with the shared ones only."""
    try:
        found: ObjectInfo | None = target.head(key)
    except ObjectNotFound:
        earlier = planned.get(key)
        found = None if earlier is None else ObjectInfo(key, earlier[0], earlier[1])
    if found is not None:  # the run's copy of an earlier run, or of an earlier row of this one
        expected = checksum or sha256_of(origin, key)
        if (size is None or found.size == size) and (found.checksum or sha256_of(target, key)) == expected:
            return "present", 0, expected
    head = origin.head(key)  # it must be there to be copied
    if size is not None and head.size != size:
        raise StorageError(f"{origin.url}/{key} has {head.size} bytes, the row recorded {size}")
    if found is None:
        refuse_conflict(target, key)  # skipped as the run's put would skip it
    digest = hashlib.sha256()
    for chunk in origin.get(key, checksum=checksum):  # verified as the run's put streams it
        digest.update(chunk)
    if found is not None:
        raise StorageError(
            f"{target.url}{'' if target.url.endswith('/') else '/'}{key} exists with other bytes; a copy "
            "would leave it as it is and not change the row"
        )
    sha = digest.hexdigest()
    if key in shared or not key.rpartition("/")[2].startswith(gid + "."):
        planned[key] = (head.size, sha)
    return "copied", head.size, sha


def named_shared(store: Store, files: list[tuple[str, str]]) -> frozenset[str]:
    """Of ``files`` ((key, generation id): a page's masters and renditions), the keys named after their own
    generation (``<id>.…``) that another generation records too, as its master or a rendition's key (a
    rendition at another's master): a dry run holds them in ``planned`` (``dry_copy``). One query per page,
    in a dry run only; before, the dry run counted such an object copied again where its run found the
    earlier row's copy there (present)."""
    own = {key: gid for key, gid in files if key.rpartition("/")[2].startswith(gid + ".")}
    if not own:
        return frozenset()
    found = store.run(rows_by_file_paths, sorted(own))
    return frozenset(path for other, path in found if own.get(path) not in (None, other))


def copies_there(target: FileStore, copies: dict[str, list[str]], gid: str) -> bool:
    """Whether every copy of generation ``gid`` (``copies[gid]``, its keys) is still in ``target``: a HEAD
    each, asked by ``relocate`` with the row locked (on SQLite the database's write lock), so each is one
    attempt with short timeouts (``base.briefly``): an endpoint that stopped answering costs the lock
    seconds, not every retry's wait (``StoreUnavailable``: the run stops, the row as it was)."""
    brief = briefly(target)
    for key in copies[gid]:
        try:
            brief.head(key)
        except ObjectNotFound:
            return False
    return True

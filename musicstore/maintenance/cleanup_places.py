"""Where ``musicstore.maintenance.retention`` deletes files: a local output root (``_Folder``: every file
reached through ``RootDir``, folder by folder, no symlink) or an object store's prefix (``_Objects``), with
the same calls: whose rows are its own, what is wrong with a row's file, remove it, find its peaks files,
and which keys a row that stays still records."""

from __future__ import annotations

import os
import posixpath
import stat

from ..errors import InvalidInput, StorageError
from ..filestore import FileStore, ObjectNotFound, StoreUnavailable
from ..filestore.local import Outside, RootDir
from ..store import Store
from .bucket import stored_by_keys
from .file_names import kin_names
from .scan import AUDIO_SUFFIXES, OwnRows, canonical_path, is_peaks_of, referenced_paths, rows_by_file_paths


class _Folder:
    """A local output root, every file reached through ``RootDir`` (folder by folder, no symlink)."""

    def __init__(self, where: RootDir) -> None:
        self.where, self.name = where, str(where.path)
        self.own = OwnRows(where.path)

    def elsewhere(self, storage_url: str | None) -> str | None:
        """Why a row is not this root's to clean up (its ``storage_url`` names another store), or None: a
        row recorded before 0006 (NULL) or in this folder, in any spelling (``scan.OwnRows``)."""
        if self.own(storage_url):
            return None
        return f"its file is in {storage_url}; clean it up with that root (--output-root {storage_url})"

    def problem(self, rel: str, kinds: frozenset[str] = AUDIO_SUFFIXES) -> tuple[str | None, int | None]:
        return _problem(self.where, rel, kinds)

    def remove(self, rel: str, errors: list[str]) -> str:
        try:
            if not self.where.unlink(rel):  # reached as ``problem`` reached it: folder by folder, no symlink
                return "missing"
        except Outside:  # became a symlink since it was checked: not touched
            return "missing"
        except OSError as exc:
            errors.append(
                f"cannot remove {rel}: {exc}; its row is deleted, so reconcile will report it as an orphan"
            )
            return "error"
        return "deleted"

    def peaks(self, masters: list[str], errors: list[str]) -> dict[str, list[tuple[str, int]]]:
        """master → the (path, size) of each peaks file beside it (regular files only): each folder listed
        once for all the masters in it."""
        wanted: dict[str, dict[str, str]] = {}
        for master in masters:
            canonical = canonical_path(master)
            if canonical is not None:
                folder, _, name = canonical.rpartition("/")
                wanted.setdefault(folder, {})[posixpath.splitext(name)[0]] = master
        found: dict[str, list[tuple[str, int]]] = {}
        for folder, stems in wanted.items():
            try:
                fd = self.where.folder(folder.split("/") if folder else [])
                if fd is None:
                    continue
                with os.scandir(fd) as entries:
                    for entry in entries:
                        stem = entry.name.rpartition(".peaks.")[0]
                        owner = stems.get(stem)
                        if owner is None or not is_peaks_of(entry.name, stem):
                            continue
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        size = entry.stat(follow_symlinks=False).st_size
                        rel = f"{folder}/{entry.name}" if folder else entry.name
                        found.setdefault(owner, []).append((rel, size))
            except Outside:  # became a symlink since the master was checked: not followed
                continue
            except OSError as exc:
                errors.append(f"cannot list the peaks files in {folder or '.'}: {exc}")
        return found

    def still_referenced(
        self, store: Store, paths: list[str], deleted: set[str], dry_run: bool, masters: bool = False
    ) -> set[str]:
        """The canonical forms of those of ``paths`` a row that stays still records (in any spelling); with
        ``masters``, as a generation's master only (not a rendition's key)."""
        if not dry_run and not masters:
            return store.run(referenced_paths, paths)
        found = store.run(rows_by_file_paths, paths, not masters)
        return {path for gid, path in found if not dry_run or gid not in deleted}


class _Objects:
    """An object store: the rows whose ``storage_url`` is its URL are its own."""

    def __init__(self, files: FileStore) -> None:
        self.files, self.name = files, files.url
        self.bucket_seen = False  # a listing answered: a HEAD's 404 is an object missing, not the bucket

    def elsewhere(self, storage_url: str | None) -> str | None:
        if storage_url == self.files.url:
            return None
        local = storage_url is None or storage_url.startswith("file:")
        where = "on a local root" if local else f"in {storage_url}"
        return f"its file is {where}; clean it up with that root"

    def problem(self, key: str, kinds: frozenset[str] = AUDIO_SUFFIXES) -> tuple[str | None, int | None]:
        if os.path.splitext(key)[1].lower() not in kinds:
            return f"{key} is not a {'/'.join(sorted(kinds))} file; cleanup touches no other type", None
        try:
            return None, self.files.head(key).size
        except ObjectNotFound:
            self._bucket_there()
            return None, None
        except InvalidInput as exc:  # a key no object under the prefix can have: '..', '//', absolute...
            return f"outside the output root: {exc}; cleanup leaves row and file alone", None
        except StoreUnavailable:  # every row would be skipped alike: stop before this page's rows go
            raise
        except StorageError as exc:
            return f"cannot look at {key}: {exc}", None

    def _bucket_there(self) -> None:
        """``StoreUnavailable`` when the bucket is not there (a HEAD's 404 has no body to say so: every row
        would read "missing" and be deleted, its objects left wherever the bucket went): one listing, the
        first time an object is missing in a run."""
        if self.bucket_seen:
            return
        try:
            next(iter(self.files.list("", page_size=1)), None)  # a missing bucket: StoreUnavailable
        except StoreUnavailable:
            raise
        except StorageError:
            return  # the bucket may be there: the object is missing, as its HEAD said
        self.bucket_seen = True

    def remove(self, key: str, errors: list[str]) -> str:
        try:
            return "deleted" if self.files.delete(key) else "missing"
        except StorageError as exc:
            errors.append(
                f"cannot delete {self.files.url}{key}: {exc}; its row is deleted, so reconcile will report "
                "it as an orphan"
            )
            return "error"

    def peaks(self, masters: list[str], errors: list[str]) -> dict[str, list[tuple[str, int]]]:
        """master → the (key, size) of each peaks object beside it: one listing of the prefix
        ``<dir>/<stem>.peaks.`` per master (a handful of keys each)."""
        found: dict[str, list[tuple[str, int]]] = {}
        for master in masters:
            folder, _, name = master.rpartition("/")
            stem = posixpath.splitext(name)[0]
            prefix = f"{folder}/{stem}.peaks." if folder else f"{stem}.peaks."
            try:
                for obj in self.files.list(prefix):
                    if is_peaks_of(obj.key.rpartition("/")[2], stem) and obj.key.startswith(prefix):
                        found.setdefault(master, []).append((obj.key, obj.size))
            except (StorageError, InvalidInput) as exc:
                errors.append(f"cannot list the peaks objects of {self.files.url}{master}: {exc}")
        return found

    def still_referenced(
        self, store: Store, keys: list[str], deleted: set[str], dry_run: bool, masters: bool = False
    ) -> set[str]:
        """Those of ``keys`` that a row which stays records in this store; with ``masters``, as a
        generation's master only (not a rendition's key)."""
        rows = store.run(stored_by_keys, self.files.url, keys)
        return {
            row.key
            for row in rows
            if (not dry_run or row.generation_id not in deleted) and not (masters and row.rendition)
        }


_Place = _Folder | _Objects


def beside_kept(
    place: _Place, store: Store, peaks: dict[str, list[tuple[str, int]]], deleted: set[str], dry_run: bool
) -> dict[str, list[tuple[str, int]]]:
    """``peaks`` (deleted masters → the peaks files beside them) without the masters beside which a master
    of the same stem and the other type stays recorded (``album/t.wav`` and ``album/t.flac``): the peaks
    files named after that stem (``album/t.peaks.256.8.json``) may be that generation's, which its row
    records: they are kept (cleanup removed them as the deleted one's; reconcile judges them by that
    master)."""
    kin = kin_kept(place, store, list(peaks), deleted, dry_run)
    return {master: found for master, found in peaks.items() if master not in kin}


def kin_kept(place: _Place, store: Store, masters: list[str], deleted: set[str], dry_run: bool) -> set[str]:
    """Those of ``masters`` beside which a master of the same stem and another type (or suffix's case:
    ``file_names.kin_names``) stays recorded (by a row not in ``deleted``, in a dry run): a generation's,
    not a rendition's key (a rendition has no peaks file; counted as a master, the deleted master's peaks
    stayed, no one's, and a dry run over several pages kept them while its run, the rendition's row deleted
    on an earlier page, removed them)."""
    siblings: dict[str, list[str]] = {}
    for master in masters:
        canonical = canonical_path(master)
        if canonical is None:
            continue
        for other in kin_names(canonical):  # t.flac, t.FLAC, t.WAV... of t.wav
            siblings.setdefault(other, []).append(master)
    if not siblings:
        return set()
    kept = place.still_referenced(store, sorted(siblings), deleted, dry_run, masters=True)
    return {master for sibling, found in siblings.items() if sibling in kept for master in found}


def _problem(
    where: RootDir, rel: str, kinds: frozenset[str] = AUDIO_SUFFIXES
) -> tuple[str | None, int | None]:
    """Why the file at ``rel`` cannot be deleted (None if it can), and its size (None when it is missing)."""
    try:
        info = where.lstat(rel)
    except Outside as exc:  # rows imported or edited by hand may hold any text
        return f"outside the output root: {exc}; cleanup leaves row and file alone", None
    except OSError as exc:
        return f"cannot stat {rel}: {exc}", None
    if os.path.splitext(rel)[1].lower() not in kinds:
        return f"{rel} is not a {'/'.join(sorted(kinds))} file; cleanup touches no other type", None
    if info is None:
        return None, None
    if not stat.S_ISREG(info.st_mode):
        return f"{rel} is not a regular file", None
    return None, info.st_size

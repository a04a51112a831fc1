"""The output root as maintenance sees it: one streaming walk, and each audio file classified by the rows.

Shared by ``reconcile``, ``retention`` (cleanup) and ``usage`` (disk usage). ``walk`` lists every entry under
the root through ``musicstore.filestore.local.RootDir`` (folder by folder, ``O_NOFOLLOW``: a symlink is
reported, never followed); ``classified`` looks audio files up in batches by the id their name carries
(``<id>.<ext>``, the layout of ``musicstore.audio.layout_path``), and what is not found that way by path. A
row's ``file_path`` is compared in its canonical form (``canonical_path``: ``./x.wav`` and ``x.wav`` name the
same file), as ``RootDir`` reaches it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import store as stores
from .. import validate
from ..errors import InvalidInput, shown
from ..filestore import local_path
from ..filestore.local import Outside, RootDir, parts
from ..models import Status
from ..ops import Call, Steps, reader
from ..store import Store
from .file_names import (
    _RENDITION,
    AUDIO_SUFFIXES,
    RENDITION_SUFFIXES,
    PeaksRecord,
    audio_stem,
    is_audio_name,
    is_peaks_of,
    is_temp_name,
    peaks_record,
    peaks_stem,
    rendition_stem,
)

Progress = Callable[[int], None]

BATCH = 1000
DEFAULT_MAX_ITEMS = 10_000
"""How many items of each kind a report lists (its counts are always complete)."""

_LIVE = frozenset({Status.PENDING.value, Status.PROCESSING.value})
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
"""A URL's scheme, as ``s3://`` or ``file://`` begin."""


# --- queries as operations ---------------------------------------------------------------------------


@reader
def rows_by_ids(ids: list[str]) -> Steps[dict[str, tuple[str, str | None]]]:
    """id → (status, file_path) for those of ``ids`` that exist."""
    rows = yield Call("maintenance_generations_by_ids", {"ids": json.dumps(ids)})
    return {r["id"]: (r["status"], r["file_path"]) for r in rows}


@reader
def folders_by_ids(ids: list[str]) -> Steps[dict[str, tuple[str, str | None]]]:
    """id → (status, storage_url) for those of ``ids`` that exist."""
    rows = yield Call("maintenance_generations_by_ids", {"ids": json.dumps(ids)})
    return {r["id"]: (r["status"], r["storage_url"]) for r in rows}


def canonical_path(path: str | None) -> str | None:
    """A row's ``file_path`` as ``RootDir`` reaches it (``./a//b.wav`` → ``a/b.wav``: ``.`` and empty segments
    dropped), the form the walk's paths have; None for no path, or one that leads outside the root."""
    if path is None:
        return None
    try:
        return "/".join(parts(path))
    except Outside:
        return None


def _spellings(paths: list[str]) -> tuple[set[str], str]:
    """The canonical forms of ``paths``, and the JSON list to look up: each also as ``./<path>``, as a row
    written before ``file_path`` was stored in canonical form may spell it (the index finds either)."""
    wanted = {path for path in map(canonical_path, paths) if path is not None}
    return wanted, json.dumps(sorted(wanted | {f"./{path}" for path in wanted}))


@reader
def rows_by_file_paths(paths: list[str], renditions: bool = True) -> Steps[list[tuple[str, str]]]:
    """(id, canonical file_path) of every generation that records one of ``paths`` (in any spelling), as its
    master or (unless ``renditions`` is false) as one of its renditions' ``storage_key``."""
    wanted, spelled = _spellings(paths)
    if not wanted:
        return []
    rows = yield Call("maintenance_generations_by_file_paths", {"paths": spelled})
    found = [(r["id"], canonical_path(r["file_path"])) for r in rows]
    made = (yield Call("maintenance_renditions_by_storage_keys", {"paths": spelled})) if renditions else []
    found += [(r["generation_id"], canonical_path(r["storage_key"])) for r in made]
    return [(gid, path) for gid, path in found if path is not None and path in wanted]


@reader
def referenced_paths(paths: list[str]) -> Steps[set[str]]:
    """The canonical forms of those of ``paths`` (relative to the root) that some generation, of any status,
    records."""
    found = yield from rows_by_file_paths.steps(paths)
    return {path for _, path in found}


# --- whose rows ---------------------------------------------------------------------------------------

_KNOWN_URLS = 1024
"""Storage URLs whose answer ``OwnRows`` keeps (a store has few: one per folder or bucket ever used)."""


class OwnRows:
    """Whether a row's file is on this local root, by the row's ``storage_url`` (migration 0006).

    A row recorded before 0006 (NULL) belongs to whichever root the operator names. A ``file://`` URL is this
    root's when it is the URL ``LocalFileStore`` and the export record for it (the path made absolute,
    symlinks kept), or another spelling of the same folder (a symlink, ``..``, a trailing slash: the same
    device and inode, looked up once per URL). Another folder, one no longer there, an object store: not
    this root's; maintenance of this root leaves those rows to their own store.
    """

    def __init__(self, root: Path) -> None:
        self.url = root.absolute().as_uri()
        info = os.stat(root)
        self._folder = (info.st_dev, info.st_ino)
        self._known: dict[str, bool] = {self.url: True}

    def __call__(self, storage_url: str | None) -> bool:
        if storage_url is None:
            return True
        known = self._known.get(storage_url)
        if known is None:
            known = self._same_folder(storage_url)
            if len(self._known) < _KNOWN_URLS:
                self._known[storage_url] = known
        return known

    def _same_folder(self, storage_url: str) -> bool:
        if storage_url[:5].lower() != "file:":
            return False
        try:
            info = os.stat(local_path(storage_url))
        except (InvalidInput, OSError, ValueError):  # not a folder's URL, or no such folder (any more)
            return False
        return stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) == self._folder


# --- the disk walk ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """One non-directory entry under the root: its path relative to the root (POSIX), size and mtime."""

    rel: str
    name: str
    size: int
    mtime: float
    kind: str
    """audio, peaks (a waveform peaks file: ``peaks_stem``), temp, unknown or symlink."""
    stem: str = ""
    """An audio file's name without its extension: the generation id in the layout (a peaks file's: its
    generation id)."""


def require_store(store: object) -> Store:
    """``store`` if it is a ``Store``; InvalidInput otherwise (maintenance runs synchronously: an
    ``AsyncStore`` would hand back coroutines where rows are expected)."""
    return stores.require_store(
        store, "maintenance takes a musicstore Store", "open a Store on the same URL for maintenance"
    )


def check_root(root: str | Path) -> Path:
    """The local output root: a folder, given as a path or a ``file:///absolute/path`` URL (one with a host,
    credentials, a query or a fragment is refused without being echoed); ``InvalidInput`` when it is not a
    directory, or not a path at all (another URL scheme, a value of another type)."""
    if not isinstance(root, str | os.PathLike) or (isinstance(root, str) and not root):
        raise InvalidInput(
            f"output root {shown(root)}: give a folder's path, file:///PATH or s3://BUCKET/PREFIX"
        )
    if isinstance(root, str) and (scheme := SCHEME.match(root)) and scheme[1].lower() != "file":
        raise InvalidInput(f"output root scheme {scheme[1]!r} is not supported: use a path, file:// or s3://")
    local = local_path(root) if isinstance(root, str) and root[:5].lower() == "file:" else root
    path = Path(validate.os_path(local, "output root"))  # a path the OS takes: is_dir raised ENAMETOOLONG
    if not path.is_dir():
        what = "is not a directory" if os.path.lexists(path) else "does not exist (the first export makes it)"
        raise InvalidInput(f"output root {path} {what}; pass the folder exports are written to")
    return path


def walk(root: Path, errors: list[str] | None = None) -> Iterator[Entry]:
    """Every entry under ``root`` except directories, streamed (only the pending directories are held).

    Symlinks (to files or folders) are reported as kind ``symlink`` and never followed: each folder is
    opened relative to its parent with ``O_NOFOLLOW`` (``RootDir``), so one swapped for a symlink after it
    was listed is not entered either.
    """
    with RootDir(root) as where:
        stack: list[str] = [""]
        while stack:
            prefix = stack.pop()
            try:
                fd = where.folder(prefix.split("/")[:-1])
                if fd is None:  # removed since it was listed
                    continue
                scanner = os.scandir(fd)
            except Outside:  # became a symlink since it was listed
                yield Entry(prefix[:-1], prefix[:-1].rpartition("/")[2], 0, 0.0, "symlink")
                continue
            except OSError as exc:
                if errors is not None:
                    errors.append(f"cannot list {root / prefix}: {exc}")
                continue
            with scanner:
                entries = iter(scanner)
                while True:
                    try:
                        entry = next(entries, None)
                    except OSError as exc:  # reading the folder failed part way (EIO, a file system's own)
                        if errors is not None:
                            errors.append(f"cannot list all of {root / prefix}: {exc}")
                        break
                    if entry is None:
                        break
                    found = _entry(entry, prefix, root, errors)
                    if found is None:
                        continue
                    if found.kind == "folder":
                        stack.append(found.rel + "/")
                    else:
                        yield found


def _entry(entry: os.DirEntry[str], prefix: str, root: Path, errors: list[str] | None) -> Entry | None:
    rel = prefix + entry.name
    try:
        if entry.is_symlink():
            return Entry(rel, entry.name, 0, 0.0, "symlink")
        if entry.is_dir(follow_symlinks=False):
            return Entry(rel, entry.name, 0, 0.0, "folder")
        info = entry.stat(follow_symlinks=False)
    except OSError as exc:  # removed while we looked, or unreadable
        if errors is not None and not isinstance(exc, FileNotFoundError):
            errors.append(f"cannot stat {root / rel}: {exc}")
        return None
    name = entry.name
    kind, stem = "unknown", ""
    if stat.S_ISREG(info.st_mode):
        if name[0] == "." and is_temp_name(name):
            kind = "temp"
        elif (rendition := _RENDITION.fullmatch(name)) is not None:
            kind, stem = "audio", rendition.group(1)
        elif is_audio_name(name):
            kind, stem = "audio", name[: name.rfind(".")]
        elif (owner := peaks_stem(name)) is not None:
            kind, stem = "peaks", owner
        elif is_peaks_of(name, name.rpartition(".peaks.")[0]):  # of a master at a custom path? (no stem)
            kind = "peaks"
    return Entry(rel, name, info.st_size, info.st_mtime, kind, stem)


@dataclass(slots=True)
class Classified:
    """An audio file (or, with ``classified(..., peaks=True)``, a peaks file) and what the database says of
    it: referenced, in_progress or orphan."""

    entry: Entry
    state: str
    status: str | None = None
    """The status of the generation whose name the file carries, where that row decided its state."""


def classify_audio(store: Store, entries: list[Entry]) -> tuple[list[Classified], list[Classified]]:
    """Sort a batch of audio files by the row their name carries: (decided, orphan candidates).

    A candidate may still be recorded by a row whose path does not follow the ``<id>.<ext>`` layout:
    ``confirm_orphans`` decides, for many candidates at once.
    """
    rows = store.run(rows_by_ids, sorted({e.stem for e in entries}))
    decided: list[Classified] = []
    candidates: list[Classified] = []
    for entry in entries:
        row = rows.get(entry.stem)
        if row is not None and canonical_path(row[1]) == entry.rel:
            decided.append(Classified(entry, "referenced", row[0]))
        elif row is not None and row[0] in _LIVE:
            decided.append(Classified(entry, "in_progress", row[0]))
        else:
            candidates.append(Classified(entry, "orphan"))
    return decided, candidates


def confirm_orphans(store: Store, candidates: list[Classified], root: Path | None = None) -> list[Classified]:
    """Mark as referenced the candidates some row records by path, with the status of the generation that
    records it (a rendition's: its generation's; the one the file's name carries first); with ``root``,
    also those the generation their name carries records in a folder inside or around ``root``
    (``_recorded_in_other_folders``); the rest stay orphans."""
    owners: dict[str, list[str]] = {}
    for gid, path in store.run(rows_by_file_paths, [c.entry.rel for c in candidates]):
        owners.setdefault(path, []).append(gid)
    rows = store.run(rows_by_ids, sorted({gid for gids in owners.values() for gid in gids})) if owners else {}
    for item in candidates:
        gids = owners.get(item.entry.rel)
        if gids:
            item.state = "referenced"
            owner = rows.get(item.entry.stem if item.entry.stem in gids else gids[0])
            item.status = None if owner is None else owner[0]
    if root is not None:
        _recorded_in_other_folders(store, root, [c for c in candidates if c.state == "orphan"])
    return candidates


def _recorded_in_other_folders(store: Store, root: Path, items: list[Classified]) -> None:
    """Mark as referenced those of ``items`` that the generation their name carries records in another
    folder that holds them too: one inside ``root`` (``root/music``, whose rows name the file ``music/``
    shorter) or around it (whose rows name it longer). The bucket's walk does the same
    (``bucket._recorded_elsewhere``); without it, ``reconcile --repair --delete-orphans`` of the outer (or
    inner) folder deleted the files of completed rows."""
    if not items:
        return
    owners = store.run(folders_by_ids, sorted({item.entry.stem for item in items}))
    base = os.path.realpath(root)
    wanted: dict[str, list[tuple[Classified, str]]] = {}
    for item in items:
        owner = owners.get(item.entry.stem)
        if owner is None or owner[1] is None or owner[1][:5].lower() != "file:":
            continue
        try:
            folder = os.path.realpath(local_path(owner[1]))
        except (InvalidInput, OSError, ValueError):
            continue
        rel = os.path.relpath(os.path.join(base, item.entry.rel), folder)
        if folder != base and rel != ".." and not rel.startswith(("../", "/")):
            wanted.setdefault(rel, []).append((item, owner[0]))
    if not wanted:
        return
    for gid, path in store.run(rows_by_file_paths, sorted(wanted)):
        for item, status in wanted.get(path, []):
            if item.entry.stem == gid:
                item.state, item.status = "referenced", status


def classify_peaks(store: Store, entries: list[Entry]) -> list[Classified | Entry]:
    """A batch of peaks files by the generation their name carries: referenced while its row exists (of any
    status), else orphan (its generation was deleted: nothing will read it). One named after a master at a
    custom path (no id in its name) is referenced when a generation recording that master records it as
    its peaks file, as a bucket's merge meets it; else it is a file of another kind (``unknown``). One
    named after a generation that is gone is referenced too when another, recording the master beside it,
    records it (a master at that generation's name that two rows share: the other's ``render_peaks`` found
    the same bytes there and recorded them; a folder's repair removed them, as a bucket's merge did not)."""
    from .custom_peaks import recorded_peaks, recorders  # it reads rows as this module does

    named = [e for e in entries if e.stem]
    rows = store.run(rows_by_ids, sorted({e.stem for e in named})) if named else {}
    # one whose generation is gone may be another's record, beside the master they share (no orphan then)
    kept = recorders(store, [e for e in named if e.stem not in rows])
    found: list[Classified | Entry] = []
    for e in named:
        status = rows[e.stem][0] if e.stem in rows else kept[e.rel][1]
        found.append(Classified(e, "orphan") if status is None else Classified(e, "referenced", status))
    return found + recorded_peaks(store, [e for e in entries if not e.stem])


def classified(
    store: Store, root: Path, errors: list[str] | None = None, batch: int = BATCH, *, peaks: bool = False
) -> Iterator[Classified | Entry]:
    """The walk with every audio file classified (in batches); other entries pass through as they are.

    Orphan candidates are confirmed by path (a scan of the table, as ``file_path`` has no index) once
    ``batch`` of them have gathered, not once per batch of files: a store with few orphans pays one scan.
    With ``peaks``, waveform peaks files are classified too (``classify_peaks``, in batches); without, they
    pass through as entries of kind ``peaks``.
    """
    pending: list[Entry] = []
    candidates: list[Classified] = []
    drawn: list[Entry] = []
    for entry in walk(root, errors):
        if peaks and entry.kind == "peaks":
            drawn.append(entry)
            if len(drawn) >= batch:
                yield from classify_peaks(store, drawn)
                drawn = []
            continue
        if entry.kind != "audio":
            yield entry
            continue
        pending.append(entry)
        if len(pending) >= batch:
            decided, found = classify_audio(store, pending)
            pending = []
            yield from decided
            candidates += found
            if len(candidates) >= batch:
                yield from confirm_orphans(store, candidates, root)
                candidates = []
    if pending:
        decided, found = classify_audio(store, pending)
        yield from decided
        candidates += found
    if candidates:
        yield from confirm_orphans(store, candidates, root)
    if drawn:
        yield from classify_peaks(store, drawn)


__all__ = [  # with the file names' functions, which maintenance imports from here
    "AUDIO_SUFFIXES",
    "BATCH",
    "DEFAULT_MAX_ITEMS",
    "RENDITION_SUFFIXES",
    "SCHEME",
    "Classified",
    "Entry",
    "OwnRows",
    "PeaksRecord",
    "Progress",
    "audio_stem",
    "canonical_path",
    "check_root",
    "classified",
    "classify_audio",
    "classify_peaks",
    "confirm_orphans",
    "folders_by_ids",
    "is_audio_name",
    "is_peaks_of",
    "is_temp_name",
    "peaks_record",
    "peaks_stem",
    "referenced_paths",
    "rendition_stem",
    "require_store",
    "rows_by_file_paths",
    "rows_by_ids",
    "walk",
]

"""The rows that record files in an object store (``musicstore.maintenance.bucket``): ``StoredRow``, the reads
that page through them by key, the peaks row a generation's records, and ``stored_rows``, their one
key-ordered stream."""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InvalidInput
from ..filestore.base import check_key
from ..models import Status
from ..ops import Call, Steps, reader
from ..store import Store
from .scan import peaks_record

HOLD = 10_000
"""Rows whose object seemed absent, held to the end of the merge (each about 200 bytes) before a HEAD each."""


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A row that records a file in the store: a generation's master, or a rendition (``rendition``).

    ``id`` is the generation's or the rendition's; ``status`` is the generation's."""

    key: str
    id: str
    generation_id: str
    status: str
    size: int | None
    checksum: str | None
    rendition: bool = False
    peaks: str | None = None
    """A generation's row: its ``metadata["peaks"]`` record as JSON text (None when it has none). A peaks
    row (``is_peaks``): the record it stands for."""
    is_peaks: bool = False
    """The waveform peaks file a generation's row records (``peaks_rows``): ``key``, ``size`` and
    ``checksum`` are the record's (``size`` None when not recorded)."""

    @property
    def must_exist(self) -> bool:
        """A completed generation's master or recorded peaks file, or any rendition: its object must be
        there."""
        return self.rendition or self.status == Status.COMPLETED.value


def peaks_rows(row: StoredRow) -> list[StoredRow]:
    """The rows standing for the peaks files a generation's ``row`` records (the peaks file, then the
    normalised one when recorded, each with the whole record as ``peaks``); none when it records none or a
    record that is not one, and none for a key that names no object in a store (``check_key``: reconcile
    reports those from the generation's row)."""
    if row.rendition or row.is_peaks or row.peaks is None:
        return []
    try:
        record = peaks_record(row.peaks)
    except ValueError:
        return []
    return [
        StoredRow(
            file.key,
            row.id,
            row.generation_id,
            row.status,
            file.size,
            file.sha256,
            peaks=row.peaks,
            is_peaks=True,
        )
        for file in ([] if record is None else record.files)
        if _names_an_object(file.key)
    ]


def _names_an_object(key: str) -> bool:
    try:
        check_key(key)
    except InvalidInput:
        return False
    return True


def _generation_row(r: dict[str, object]) -> StoredRow:
    return StoredRow(
        str(r["file_path"]), str(r["id"]), str(r["id"]), str(r["status"]),
        None if r["file_size_bytes"] is None else int(r["file_size_bytes"]),  # type: ignore[call-overload]
        None if r["checksum"] is None else str(r["checksum"]), False,
        None if r.get("peaks") is None else str(r["peaks"]),
    )  # fmt: skip


def _rendition_row(r: dict[str, object]) -> StoredRow:
    return StoredRow(
        str(r["storage_key"]), str(r["id"]), str(r["generation_id"]), str(r["status"]),
        int(r["file_size_bytes"]),  # type: ignore[call-overload]
        None if r["checksum"] is None else str(r["checksum"]), True,
    )  # fmt: skip


@reader
def stored_files_after(url: str, after: str, limit: int) -> Steps[list[StoredRow]]:
    """Generations whose file is in the store at ``url``, keys above ``after``, in the index's key order."""
    rows = yield Call(
        "maintenance_stored_files_after", {"storage_url": url, "after_path": after, "limit": limit}
    )
    return [_generation_row(r) for r in rows]


@reader
def stored_files_at(url: str, key: str) -> Steps[list[StoredRow]]:
    """Every generation that records ``key`` in the store at ``url``."""
    rows = yield Call("maintenance_stored_files_at", {"storage_url": url, "file_path": key})
    return [_generation_row(r) for r in rows]


@reader
def stored_renditions_after(url: str, after: str, limit: int) -> Steps[list[StoredRow]]:
    """Renditions of generations in the store at ``url``, keys above ``after``, in key order."""
    rows = yield Call(
        "maintenance_stored_renditions_after", {"storage_url": url, "after_key": after, "limit": limit}
    )
    return [_rendition_row(r) for r in rows]


@reader
def owners_by_ids(ids: list[str]) -> Steps[dict[str, StoredRow]]:
    """id → the generation's row (``key``: its store's URL, ``""`` for a local root; ``peaks``: its peaks
    record) for those of ``ids`` that exist."""
    rows = yield Call("maintenance_generations_by_ids", {"ids": json.dumps(ids)})
    return {
        r["id"]: StoredRow(
            r["storage_url"] or "", r["id"], r["id"], r["status"], None, None, peaks=r["peaks"]
        )
        for r in rows
    }


@reader
def stored_by_keys(url: str, keys: list[str]) -> Steps[list[StoredRow]]:
    """The generations and renditions that record one of ``keys`` in the store at ``url``."""
    params = {"storage_url": url, "keys": json.dumps(keys)}
    found = [_generation_row(r) for r in (yield Call("maintenance_stored_generations_by_keys", params))]
    found += [_rendition_row(r) for r in (yield Call("maintenance_stored_renditions_by_keys", params))]
    return found


def _generation_rows(store: Store, url: str, batch: int) -> Iterator[StoredRow]:
    after = ""
    while page := store.run(stored_files_after, url, after, batch):
        full = len(page) == batch
        if full:  # rows sharing the page's last key may go on past it: read that key's rows whole
            after = page[-1].key
            page = [row for row in page if row.key != after] + store.run(stored_files_at, url, after)
        yield from page
        if not full:
            return


def _with_peaks(rows: Iterator[StoredRow]) -> Iterator[StoredRow]:
    """``rows`` (in key order) and, among them in key order, the peaks row of each that records a peaks
    file. A peaks file lies beside its master (``<dir>/<stem>.peaks.…json`` sorts just before
    ``<dir>/<stem>.wav``, just after ``<dir>/<stem>.flac``), so it is held in a small heap until the
    stream reaches its key; one that sorts before a row already given (a record edited by hand) comes out
    of order, and the merge confirms it with a ``HEAD``. At most ``HOLD`` are held. Rows sharing a key
    (and so, often, a peaks file) are read whole before any is given: the peaks rows of a later one would
    otherwise come between them, and the merge, which takes a key's rows as they come together, would
    count their objects twice."""
    held: list[tuple[str, int, StoredRow]] = []
    count = 0
    for key, same in itertools.groupby(rows, key=lambda row: row.key):
        group = list(same)
        for row in group:
            for derived in peaks_rows(row):
                heapq.heappush(held, (derived.key, count, derived))
                count += 1
        while held and (held[0][0] <= key or len(held) > HOLD):
            yield heapq.heappop(held)[2]
        yield from group
    while held:
        yield heapq.heappop(held)[2]


def _rendition_rows(store: Store, url: str, batch: int) -> Iterator[StoredRow]:
    after = ""
    while page := store.run(stored_renditions_after, url, after, batch):
        yield from page
        if len(page) < batch:
            return
        after = page[-1].key


def stored_rows(store: Store, url: str, batch: int, *, peaks: bool = False) -> Iterator[StoredRow]:
    """Every row recording a file in the store at ``url``, in key order (one page of each table held); with
    ``peaks``, also a row for each recorded waveform peaks file (``peaks_rows``)."""
    generations = _generation_rows(store, url, batch)
    return heapq.merge(
        _with_peaks(generations) if peaks else generations,
        _rendition_rows(store, url, batch),
        key=lambda row: row.key,
    )

"""Waveform peaks files named after a master at a custom path (``album/track 01.peaks.256.8.json``: no
generation id in the name, ``musicstore.rendering.peaks_name`` of ``album/track 01.wav``), as a local root's
walk classifies them (``scan.classify_peaks``): referenced when the row of the master beside them records
them, as a bucket's merge meets them by that record; orphans when no generation records that master (its
generation was deleted, as the master then is: the peaks of a master in the layout, ``<id>.peaks…json``,
are orphans once their generation is gone); else (a generation records the master, not them) files of
another kind, never touched. A bucket's merge judges them alike (``bucket._Classifier.confirm_others``)."""

from __future__ import annotations

import json
import posixpath

from ..errors import InvalidInput
from ..ids import check_id
from ..ops import Call, Steps, reader
from ..storage_names import peaks_digest
from ..store import Store
from .file_names import master_names, peaks_owner
from .scan import Classified, Entry, canonical_path, peaks_record, rows_by_file_paths


@reader
def peaks_records_by_ids(ids: list[str]) -> Steps[dict[str, tuple[str, str | None]]]:
    """id → (status, its ``metadata["peaks"]`` record as JSON text or None), for those of ``ids`` that
    exist."""
    rows = yield Call("maintenance_generations_by_ids", {"ids": json.dumps(ids)})
    return {r["id"]: (r["status"], r["peaks"]) for r in rows}


def recorded_peaks(store: Store, entries: list[Entry]) -> list[Classified | Entry]:
    """Peaks-named files without an id in their name: referenced (with its status) when a generation
    recording the master beside them (``<stem>.wav`` or ``.flac``, the suffix in any case:
    ``file_names.master_names``) records them as its peaks file, orphans when no generation (of any
    status, in any store) records that master (one whose name carries the 8 hex of a generation's id: no
    generation of that id), else entries of kind ``unknown``."""
    found: list[Classified | Entry] = []
    known = recorders(store, entries)
    for entry in entries:
        gids, status = known[entry.rel]
        if not gids:  # its generation is gone (the master beside it, if still there, is an orphan too)
            found.append(Classified(entry, "orphan"))
        elif status is None:
            entry.kind = "unknown"
            found.append(entry)
        else:
            found.append(Classified(entry, "referenced", status))
    return found


def recorders(store: Store, entries: list[Entry]) -> dict[str, tuple[list[str], str | None]]:
    """entry's path → (the generations recording the master beside it, ``<stem>.wav`` or ``.flac`` in any
    case, but one whose name carries another's 8 hex; the status of one of them that records it as its
    peaks file, or None). Two queries for all of ``entries``."""
    if not entries:
        return {}
    masters = {e.rel: master_names(e.rel.rpartition(".peaks.")[0]) for e in entries}
    owners: dict[str, list[str]] = {}
    for gid, path in store.run(rows_by_file_paths, sorted({p for paths in masters.values() for p in paths})):
        owners.setdefault(path, []).append(gid)
    records = store.run(peaks_records_by_ids, sorted({g for gids in owners.values() for g in gids}))
    found: dict[str, tuple[list[str], str | None]] = {}
    for entry in entries:
        status = None
        own = peaks_owner(entry.rel.rpartition("/")[2])  # the 8 hex of its generation's id, if named so
        gids = [
            g for path in masters[entry.rel] for g in owners.get(path, []) if own in (None, peaks_digest(g))
        ]
        for gid in gids:
            recorded, text = records.get(gid, ("", None))
            try:
                record = peaks_record(text)
            except ValueError:
                continue
            if record is not None and any(canonical_path(f.key) == entry.rel for f in record.files):
                status = recorded  # its peaks file, or the normalised one
        found[entry.rel] = (gids, status)
    return found


@reader
def owners_of(key: str, stem: str) -> Steps[list[str]]:
    """The generations whose row lock guards ``key``, a file named after ``stem`` (``scan.audio_stem``):
    ``[stem]`` when it is an id; else (the stem of a master named by hand, ``album/Take 1.wav``'s rendition
    ``Take 1.<profile>.<8 hex>.<ext>``) the ids of those recording a master ``<stem>.wav`` or ``.flac`` (the
    suffix in any case: ``file_names.master_names``) in ``key``'s folder, whose lock a render holds from
    before its put to its commit."""
    try:
        return [check_id(stem)]
    except InvalidInput:
        pass
    names = master_names(posixpath.join(posixpath.dirname(key), stem))
    return sorted({gid for gid, _ in (yield from rows_by_file_paths.steps(names, renditions=False))})

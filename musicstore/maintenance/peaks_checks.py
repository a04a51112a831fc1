"""Reconcile's checks and repair of the waveform peaks files a generation's row records
(``metadata["peaks"]``: the audiowaveform file and, when the export wrote it, the normalised one in its
``normalized``): each file there, of the recorded size and SHA-256, else a ``DanglingPeaks``; a repair drops
the whole record (``render_peaks`` makes the peaks again) and takes a damaged file of that generation away."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from typing import Any

from .. import validate
from ..filestore.local import Outside, RootDir
from ..models import Status
from ..ops import Call, Steps, writer
from ..ops.reads import GENERATION
from ..ops.storage import get_storage
from ..store import Store
from .file_names import PeaksRecord, is_peaks_file_of, peaks_record
from .findings import DanglingPeaks, OutsideRow, ReconcileReport


@writer
def drop_peaks_records(items: list[tuple[str, str | None, str | None]]) -> Steps[dict[str, str | None]]:
    """Remove ``metadata["peaks"]`` (with its ``normalized``) from each (generation id, record as read: JSON
    text, storage_url as read; a generation listed twice, both its files damaged, is changed once)
    still completed, still recording exactly that, in that store (``copy_files`` may have moved it since);
    returns the ids changed, each with its master's key. The row is read
    under its lock (``maintenance_generation_for_update``), as ``merge_metadata`` reads it, and written back
    whole; on PostgreSQL a row another transaction holds is skipped (left for the next run), never waited."""
    changed: dict[str, str | None] = {}
    for gid, text, url in items:
        generation = yield Call("maintenance_generation_for_update", {"id": gid}, GENERATION)
        if generation is None or generation.status is not Status.COMPLETED:
            continue
        if (yield from get_storage.steps(gid)).storage_url != url:
            continue
        if "peaks" not in generation.metadata or (
            text is not None and generation.metadata["peaks"] != json.loads(text)
        ):
            continue
        kept = {k: v for k, v in generation.metadata.items() if k != "peaks"}
        encoded = validate.metadata(kept, checked=True)
        if (yield Call("update_completed_metadata", {"id": gid, "metadata": encoded})) == 1:
            changed[gid] = generation.file_path
    return changed


def _check_local_peaks(
    where: RootDir,
    report: ReconcileReport,
    gid: str,
    text: str,
    *,
    found: list[tuple[DanglingPeaks, str | None]],
    listed: Callable[[list[Any], Any], None],
) -> None:
    """The peaks files ``gid``'s row records (``text``: ``metadata["peaks"]`` as JSON, its ``normalized``
    too): each there, a regular file inside the root, of the recorded size and SHA-256 (a few KB, read
    through its folder's descriptor). A record that leads outside the root is listed in ``outside_root``
    (``kind="peaks"``), never followed."""
    try:
        record = peaks_record(text)
    except ValueError as exc:
        report.peaks_checked += 1
        found.append((DanglingPeaks(gid, str(exc), "invalid_record", None, None), text))
        return
    if record is None:
        return
    report.peaks_checked += 1
    for file in record.files:
        try:
            if file.sha256 is None:
                info = where.lstat(file.key)
                actual = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
                hashed = None
            else:
                read = where.sha256(file.key, expect=file.size)
                actual, hashed = (None, None) if read is None else read
        except Outside as exc:
            report.outside_root_count += 1
            listed(report.outside_root, OutsideRow(gid, file.key, str(exc), kind="peaks"))
            continue
        except OSError as exc:
            report.errors.append(f"cannot read the peaks file {file.key} of generation {gid}: {exc}")
            continue
        problem = _peaks_problem(file, actual, hashed)
        if problem is not None:
            found.append((DanglingPeaks(gid, file.key, problem, file.size, actual), text))


def _peaks_problem(record: PeaksRecord, actual: int | None, hashed: str | None) -> str | None:
    if actual is None:
        return "missing"
    if record.size is not None and actual != record.size:
        return "size_mismatch"
    return "checksum_mismatch" if hashed is not None and hashed != record.sha256 else None


def _drop_peaks(
    store: Store,
    found: list[tuple[DanglingPeaks, str | None]],
    take_away: Callable[[DanglingPeaks], None],
    stores: dict[str, str | None],
) -> None:
    """Repair: drop each record still as read (a damaged normalised file drops it whole, as a damaged peaks
    file does), then take a damaged file away (one the record named, whose
    name is a peaks file of that generation, by its id or beside its master by its stem: never another
    row's file)."""
    changed = store.run(drop_peaks_records, [(item.id, text, stores[item.id]) for item, text in found])
    for item, _ in found:
        if item.id not in changed:
            item.action = "changed"
            continue
        item.action = "record_dropped"
        if item.problem in ("size_mismatch", "checksum_mismatch") and is_peaks_file_of(
            item.key, item.id, changed[item.id]
        ):
            take_away(item)

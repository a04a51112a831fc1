"""What ``musicstore.maintenance.retention``'s ``cleanup`` does to a deleted generation's files: its master,
its renditions' files and its peaks files, each removed once (or, in a dry run, counted once as it would be),
through the ``_Place`` (``cleanup_places``) that holds them.

Rows may share a file: two rows recording one master, a rendition at another generation's master's key. A file
is removed (or counted) by the first of a page's deleted rows that records it; the others find it gone
(``missing``, as the removal itself would), so that a dry run counts what its run removes."""

from __future__ import annotations

from typing import Any

from .cleanup_places import _Place
from .cleanup_report import CleanupReport
from .file_names import owned_peaks
from .scan import RENDITION_SUFFIXES, canonical_path, peaks_record, peaks_stem


def shares(rel: str | None, shared: set[str]) -> bool:
    """Whether the file at ``rel`` is one of ``shared`` (in any spelling)."""
    return rel is not None and (rel in shared or (canonical_path(rel) or rel) in shared)


def delete_renditions(
    place: _Place, keys: list[str], dry_run: bool, report: CleanupReport, removed: set[str]
) -> int:
    """Remove a deleted generation's rendition files at ``keys`` but those in ``removed`` (removed already,
    or in a dry run counted: another deleted row's master or rendition there), adding those it removes;
    returns how many (one left: in errors)."""
    gone = 0
    for key in keys:
        if (canonical_path(key) or key) in removed:
            continue  # the run finds it missing: not counted twice
        problem, on_disk = place.problem(key, RENDITION_SUFFIXES)
        if problem is not None:
            report.errors.append(f"rendition {key} left in place: {problem}")
            continue
        action = file_action(
            place, rel=key, on_disk=on_disk, shared=set(), dry_run=dry_run, errors=report.errors, gone=removed
        )
        if action in ("deleted", "would_delete"):
            gone += 1
            report.files_deleted += 1
            report.bytes_freed += on_disk or 0
    return gone


def with_recorded_peaks(
    place: _Place, row: dict[str, Any], found: list[tuple[str, int]]
) -> list[tuple[str, int]]:
    """``found`` (the peaks files beside the master, ``owned_peaks``) and those the row records (the peaks
    file, the normalised one) that lie elsewhere, are there, and are named ``<id>.peaks.…json`` (a record
    that is not one adds nothing)."""
    found = [(key, size) for key, size in found if owned_peaks(key, row["id"])]
    try:
        record = peaks_record(row.get("peaks"))
    except ValueError:
        return found
    for file in [] if record is None else record.files:  # the peaks file, and the normalised one
        if peaks_stem(file.key.rpartition("/")[2]) != row["id"]:
            continue
        key = canonical_path(file.key)
        if key is None or any(canonical_path(k) == key for k, _ in found):
            continue
        problem, size = place.problem(file.key, frozenset({".json"}))
        if problem is None and size is not None:
            found = [*found, (file.key, size)]
    return found


def delete_peaks(
    place: _Place, found: list[tuple[str, int]], dry_run: bool, report: CleanupReport, gone: set[str]
) -> int:
    """Remove a deleted generation's peaks files but those in ``gone`` (removed already); returns how many."""
    count = 0
    for key, size in found:
        canonical = canonical_path(key) or key
        if canonical in gone:
            continue
        if dry_run or place.remove(key, report.errors) == "deleted":
            gone.add(canonical)
            count += 1
            report.files_deleted += 1
            report.peaks_files_deleted += 1
            report.bytes_freed += size
    return count


def file_action(
    place: _Place,
    *,
    rel: str | None,
    on_disk: int | None,
    shared: set[str],
    dry_run: bool,
    errors: list[str],
    gone: set[str] | None = None,
) -> str:
    """What happens to the file at ``rel``; ``gone``: the files removed (or that would be) before, which
    another row deleted with this one recorded too (``missing`` now, as the removal itself would find)."""
    if rel is None:
        return "none"
    canonical = canonical_path(rel) or rel
    if shares(rel, shared):
        return "kept_shared"
    if on_disk is None or (gone is not None and canonical in gone):
        return "missing"
    action = "would_delete" if dry_run else place.remove(rel, errors)
    if gone is not None and action in ("would_delete", "deleted"):
        gone.add(canonical)
    return action

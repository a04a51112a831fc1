"""What ``musicstore.maintenance.retention.cleanup`` reports: each generation deleted (``CleanupItem``) or
left with the reason (``SkippedItem``), and the report that counts and lists them (``CleanupReport``).
Re-exported by ``musicstore.maintenance.retention``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CleanupItem:
    """A generation cleanup deleted (or would delete, in a dry run).

    ``file_action``: deleted, would_delete, missing (the row named a file that was not there), kept_shared
    (another row records the same file, so it stays), none (the row had no file).
    """

    id: str
    status: str
    model_name: str
    created_at: str
    file_path: str | None
    file_size_bytes: int | None
    file_action: str
    renditions_deleted: int = 0
    """Its rendition files deleted (or, in a dry run, that would be): their rows go with the generation's."""
    peaks_deleted: int = 0
    """Its waveform peaks files deleted (or, in a dry run, that would be); none when its master is kept
    (``kept_shared``)."""


@dataclass(slots=True)
class SkippedItem:
    """A generation cleanup selected but left, row and file, with the reason."""

    id: str
    file_path: str | None
    reason: str


@dataclass(slots=True)
class CleanupReport:
    """What cleanup did (or, with ``dry_run``, would do); ``json.dumps(dataclasses.asdict(report))`` works.

    Lists hold at most ``max_items`` entries (``truncated``); counts are complete. ``total_bytes_*`` are the
    bytes the store records (all generations' files and their renditions'; peaks files, recorded in no table,
    are not counted); in a dry run ``total_bytes_after`` is the estimate.
    ``budget_met`` is None without ``max_total_bytes``.
    """

    dry_run: bool
    root: str
    statuses: list[str]
    older_than_seconds: float | None
    cutoff: str | None
    model_name: str | None
    max_total_bytes: int | None
    rows_deleted: int = 0
    files_deleted: int = 0
    """Masters, renditions and peaks files deleted (in a dry run: that would be)."""
    bytes_freed: int = 0
    peaks_files_deleted: int = 0
    """Of ``files_deleted``, waveform peaks files (``<stem>.peaks.<int>.<8|16>[.split].json`` beside a
    deleted generation's master; their bytes are in ``bytes_freed``)."""
    rows_changed: int = 0
    """Selected rows another process changed or deleted first: left alone."""
    skipped_count: int = 0
    outside_root_count: int = 0
    """Of the skipped rows, those whose file path leads outside the root (never followed nor touched)."""
    total_bytes_before: int = 0
    total_bytes_after: int = 0
    budget_met: bool | None = None
    lanes_deleted: int = 0
    """With ``older_than``: the owner keys' lanes deleted (in a dry run: that would be) that had no job
    pending or processing as it started and were last served before the cutoff (a lane this run's deletes
    empty goes at the next run; a key's next job makes its lane again)."""
    deleted: list[CleanupItem] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    truncated: bool = False
    seconds: float = 0.0

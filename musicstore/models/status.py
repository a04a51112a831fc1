"""The status machine's vocabulary: a generation's ``Status``, the transitions between statuses, and the
reading of a stored status (``status_of``)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from ..errors import MigrationError


class Status(StrEnum):
    """Where a generation stands. ``pending → processing → completed | failed``, ``pending|processing →
    cancelled``, ``processing → pending`` (retry or expired lease)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """No transition leaves this status."""
        return self in _TERMINAL


_TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
_STATUS = {status.value: status for status in Status}

TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.PROCESSING, Status.CANCELLED}),
    Status.PROCESSING: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset({Status.PENDING}),  # replay: a dead letter queued again
    Status.CANCELLED: frozenset(),
}
"""The status machine: the statuses each status may change to. failed → pending is ``replay``, an
operator's action on a dead letter; no worker's step leaves completed, failed or cancelled."""


def status_of(value: str) -> Status:
    """A stored status as a ``Status``. One this version does not know (a later musicstore's schema allows
    it) is a ``MigrationError`` saying so, not a bare ``KeyError``."""
    try:
        return _STATUS[value]
    except KeyError:
        raise MigrationError(
            f"a generation has the status {value!r}, which this musicstore does not know: a later "
            "musicstore wrote it; upgrade every process that opens the database"
        ) from None

"""What wakes a wait (``musicstore.waiting``): the PostgreSQL channels the triggers notify on, and ``Wake``, a
wait's match for a notification."""

from __future__ import annotations

from dataclasses import dataclass

PENDING = "musicstore_pending"
"""The channel a job becoming pending is notified on (PostgreSQL)."""
FINISHED = "musicstore_finished"
"""The channel a job becoming completed, failed or cancelled is notified on, with its id (PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class Wake:
    """What wakes a sleeper: a notification on ``channel`` (None: either), with ``payload`` (None: any)."""

    channel: str | None
    payload: str | None = None

    def matches(self, channel: str, payload: str) -> bool:
        return self.channel in {None, channel} and (self.payload is None or payload == self.payload)


WORK = Wake(None)
"""Work may be claimable: a job became pending, or one finished (which frees a place under its owner key's
limit)."""


def finished(generation_id: str) -> Wake:
    """This job became completed, failed or cancelled."""
    return Wake(FINISHED, generation_id)


__all__ = ["FINISHED", "PENDING", "WORK", "Wake", "finished"]

"""What wakes a wait (``musicstore.waiting``): the PostgreSQL channels the triggers notify on, and ``Wake``, a
wait's match for a notification."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from ..ids import check_id
from ..validate import whole_number

PENDING = "musicstore_pending"
"""The channel a job becoming pending is notified on (PostgreSQL)."""
FINISHED = "musicstore_finished"
"""The channel a job becoming completed, failed or cancelled is notified on, with its id (PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class Wake:
    """What wakes a sleeper: a notification on ``channel`` (None: either), with ``payload`` (None: any).
    ``herd``: a claim wait's (``claiming``), alike with the other waits of its herd, so that a notification
    wakes one of them (``herds``), not all; None: every wait it matches is woken."""

    channel: str | None
    payload: str | None = None
    herd: Hashable = None

    def matches(self, channel: str, payload: str) -> bool:
        return self.channel in {None, channel} and (self.payload is None or payload == self.payload)


WORK = Wake(None)
"""Work may be claimable: a job became pending, or one finished (which frees a place under its owner key's
limit)."""


def claiming(options: Mapping[str, object]) -> Wake:
    """A claim wait's ``WORK``, in the herd of the waits with its claim options: what one of them would
    claim any of them would (``owner_limit`` alone decides which job a claim may take; ``lease_seconds``
    and the worker id do not). An integer limit is the herd's as a plain int (``np.int64(2)`` with ``2``:
    the claim takes it as 2); any other ``owner_limit`` (the try will refuse it) makes a herd of its own."""
    limit = options.get("owner_limit")
    if limit is None or type(limit) is int:
        return Wake(None, herd=("claim", limit))
    whole = whole_number(limit)
    return Wake(None, herd=object() if whole is None else ("claim", whole))


def finished(generation_id: str) -> Wake:
    """This job became completed, failed or cancelled."""
    return Wake(FINISHED, generation_id)


def awaited(generation_id: object) -> Wake:
    """``wait_for``'s: ``finished`` of a checked generation id (``InvalidInput``), checked before the wait
    registers with its hub: the hubs key and sort the awaited ids, and an id of another type (an int, a
    list) registered even for the moment until its first try refused it raised a bare ``TypeError``
    (PostgreSQL) or ended the SQLite poller's thread at the next commit (its other waits then woke only at
    their re-try)."""
    return finished(check_id(generation_id))


__all__ = ["FINISHED", "PENDING", "WORK", "Wake", "awaited", "claiming", "finished"]

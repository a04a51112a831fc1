"""What a job's writes share (``musicstore.ops.jobs``, ``claims``, ``creation``): a lease's length
(``lease_of``) and its end, a moment the store can keep (``_later``), a retry's backoff checked the same
way, a ``Fixed`` write's ``Stamp``, and the reader of the lock queries' row (``LOCKED``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidInput
from ..models import columns
from .steps import Params

DEFAULT_LEASE_SECONDS = 300.0
"""How long a claim is held without a heartbeat before ``requeue_expired`` may take it back."""


LOCKED = columns("locked")


Stamp = Callable[[datetime], Any]
"""A ``Fixed`` write's ``stamp``: a moment as the backend binds it."""


_LEASES: dict[float, timedelta] = {}
"""``lease_of``'s timedeltas by their seconds."""


def lease_of(seconds: float) -> timedelta:
    """``timedelta(0, seconds)``, kept for the few lease lengths a process uses (made from a float it costs
    about as much as the rest of a heartbeat's checks). InvalidInput for one under half a microsecond: a
    lease of none (expired as it was claimed, taken back by the next ``requeue_expired``)."""
    lease = _LEASES.get(seconds)
    if lease is None:
        lease = timedelta(0, seconds)
        if not lease:
            raise InvalidInput(f"lease_seconds must be at least a microsecond, got {seconds!r}")
        if len(_LEASES) >= 64:
            _LEASES.clear()
        _LEASES[seconds] = lease
    return lease


def _later(now: datetime, span: timedelta, what: str) -> datetime:
    """``now + span``, a moment the store can keep (years 1 to 9999 in UTC): else InvalidInput naming
    ``what`` and the clock, before anything is written (a bare OverflowError escaped a claim at 9999)."""
    try:
        end = now + span
        if end.year == 9999:  # a zone behind UTC may carry it past 9999 there
            end.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{what} of {span.total_seconds():g} s from {now.isoformat()} ends after the year 9999 (UTC), "
            "which the store cannot keep: check the store's clock"
        ) from None
    return end


def _backoff_fits(now: datetime, delay: Params) -> None:
    """A retry's backoff, at most ``cap_seconds``, ends where ``_later`` says (checked before the write:
    run_after is computed in the query)."""
    if delay["base_seconds"] > 0:
        _later(now, timedelta(0, delay["cap_seconds"]), "a retry's backoff (its cap_seconds)")

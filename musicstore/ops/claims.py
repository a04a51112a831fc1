"""The claim: take the next jobs in the queue's order (re-exported by ``musicstore.ops.jobs``).

The claim takes jobs in the queue's order (docs/queue.md): among the lanes (one per owner key, one for jobs
without a key) with a ready job and room under their limit, the head with the highest priority, then the lane
with the fewest jobs processing, then the lane served longest ago (round robin, migration 0015), then the
oldest head. ``claim_fast`` decides and takes the best head in one statement from the lanes' heads and running
counts that triggers keep (migration 0012); it returns the claimed row, or no row when no lane has a ready job
and room: either way the claim is one statement. On SQLite that is all (the writer lock makes the decision
exact; a lane whose head waits for its ``run_after`` is ranked with every lane in the same statement). On
PostgreSQL it takes the first keyed lane with room whose row no other claimer holds (FOR UPDATE SKIP LOCKED)
and returns a row of NULLs (``UNDECIDED``) when it took nothing though a lane may have a job: then
``queue_decide`` decides the lane (``_decided_lane``) and ``claim_lane_head`` takes its head (with its limit
checked in the same statement, against the key's ``owner_lanes`` row locked FOR UPDATE: its newest committed
count); when a lane's head waits for its ``run_after``, ``queue_heads`` ranks every lane.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .. import validate
from ..models import Generation, RowReader, columns, repeating_reader
from .leases import DEFAULT_LEASE_SECONDS, LOCKED, Stamp, _later, lease_of
from .reads import GENERATION
from .steps import MORE, NOW, Call, More, Params, Steps, writer, writes_fixed

MAX_OWNER_LIMIT = 1_000_000
"""The largest limit on an owner key's processing jobs."""


CANDIDATES = 8
"""How many lanes one claim ranks and tries, best first, before it returns None (a lane is skipped when
another claimer took its last ready job, or, on PostgreSQL, holds its lock, meanwhile)."""


HEADS = columns("owner_key", "max_running")


DECIDED = columns("owner_key", "max_running", "locked")


_CLAIMS_TRACKED = 4_096
"""How many (job, worker) claims ``claim_epoch`` remembers before it starts again from none."""


_claim_serial = itertools.count(1)


_claims: dict[tuple[str, str], int] = {}


def _took(claimed: Generation | None) -> Generation | None:
    """Note a claim this process made (``claim_epoch``) and pass it through."""
    if claimed is not None and claimed.worker_id is not None:
        if len(_claims) >= _CLAIMS_TRACKED:
            _claims.clear()  # forgotten pairs read None: at worst one more progress report is written
        _claims[claimed.id, claimed.worker_id] = next(_claim_serial)
    return claimed


def claim_epoch(generation_id: str, worker_id: str) -> int | None:
    """A number that changes each time this process claims ``generation_id`` for ``worker_id`` (None when
    it has not, or no longer remembers): progress coalescing (``progress.Coalescer``) starts afresh with
    each claim, since a retried or requeued job's progress was cleared."""
    return _claims.get((generation_id, worker_id))


class _Undecided:
    """What ``claim_fast`` returns when it took nothing though a lane may have a ready job (PostgreSQL only:
    another claimer held the lanes or their jobs, or the best lane's head waits for its ``run_after``)."""

    __slots__ = ()


UNDECIDED = _Undecided()


def _fast_of(reader: RowReader[Generation]) -> RowReader[Generation | _Undecided]:
    """A row reader of ``claim_fast``'s rows: the claimed generation, or ``UNDECIDED`` for a row of NULLs."""

    def fast(names: Sequence[str]) -> Callable[[Sequence[Any]], Generation | _Undecided]:
        build = reader(names)
        at = list(names).index("id")

        def read(row: Sequence[Any]) -> Generation | _Undecided:
            return UNDECIDED if row[at] is None else build(row)

        return read

    return fast


_fast = _fast_of(GENERATION)
"""``claim_fast``'s row reader."""
_fast_batch = _fast_of(repeating_reader("started_at", "lease_expires_at"))
"""``claim_fast``'s row reader in a claim batch, whose claims all start at one moment with one lease end."""


def _limit(owner_limit: int | None) -> int | None:
    if owner_limit is None:
        return None
    return validate.integer(owner_limit, "owner_limit", 0, MAX_OWNER_LIMIT)


def _decided_lane(
    now: datetime, default_limit: int | None
) -> Steps[tuple[str | None, int | None, bool | None] | None]:
    """The lane ``queue_heads`` would rank first, found without ranking every lane, and whether its lock is
    held already: ``(None, None, None)`` when no lane has a ready job and room, None when the lanes' heads do
    not decide it.

    Each owner key's lane keeps its running jobs and its head (its first pending job in claim order) in
    ``owner_lanes`` (migration 0012, kept by triggers), in an index in the order the claim ranks the lanes:
    the head's priority, the fewest running, the longest since served, the head's age. The first keyed lane
    with room there is the best keyed lane (on PostgreSQL the first whose lock this claim takes now: lanes
    other claimers hold are skipped), unless its head waits for its ``run_after`` (its first ready job is
    further on: undecided); the lane of jobs without a key is compared with it by its first ready job, its
    running jobs and its jobs' latest start.
    """
    decide = {"now": now, "default_limit": default_limit}
    found: tuple[str | None, int | None, bool | None] | None = yield Call("queue_decide", decide, DECIDED)
    return found


def _claim_lane(
    params: dict[str, Any], owner_key: str, max_running: int | None, wait: bool, locked: bool = False
) -> Steps[Generation | None]:
    """Claim the head of one lane (after its lock, if it has a limit and ``locked`` is False), or None."""
    if max_running is not None and not locked:
        lock = yield Call("lock_lane" if wait else "try_lock_lane", {"owner_key": owner_key}, LOCKED)
        if not lock or not lock[0]:
            return None
    lane = {**params, "owner_key": owner_key, "max_running": max_running}
    claimed: Generation | None = yield Call("claim_lane_head", lane, GENERATION)
    return claimed


def _claim_undecided(params: dict[str, Any], wait: bool) -> Steps[Generation | None]:
    """The claim after ``claim_fast`` left it undecided (PostgreSQL): the head of the best lane that still has
    one, or None. ``wait``: the first lane with a limit waits for its lock if it is not had at once, the
    others are skipped while another claimer holds theirs; a caller that already wrote in this transaction
    passes False, so that it never waits while holding a lock."""
    default_limit = params["default_limit"]
    decided = yield from _decided_lane(params["now"], default_limit)
    if decided is not None:
        owner_key, max_running, locked = decided
        if owner_key is None:
            return None  # no lane has a ready job and room
        held = bool(locked)
        claimed: Generation | None = yield from _claim_lane(params, owner_key, max_running, wait, held)
        if claimed is not None:
            return claimed
        wait = wait and max_running is None  # a lock was taken (or waited for): never wait for a second
    ranked = {"now": params["now"], "default_limit": default_limit, "limit": CANDIDATES}
    lanes: list[tuple[str, int | None]] = yield Call("queue_heads", ranked, HEADS)
    for owner_key, max_running in lanes:
        claimed = yield from _claim_lane(params, owner_key, max_running, wait)
        wait = wait and max_running is None
        if claimed is not None:
            return claimed
    return None


def _claim_params(
    now: datetime, stamp: Stamp, checked: tuple[str | None, timedelta, int | None]
) -> tuple[Params]:
    worker, lease, key_limit = checked
    return (
        {
            "worker_id": worker,
            "now": stamp(now),
            "lease_expires_at": stamp(_later(now, lease, "a lease")),
            "default_limit": key_limit,
        },
    )


def _claim_finish(found: list[Any], now: datetime, checked: tuple[Any, ...]) -> Generation | More | None:
    fast = found[0]  # claimed, or None: no lane has a ready job and room
    return MORE if isinstance(fast, _Undecided) else _took(fast)


def _claim_more(
    now: datetime, worker: str | None, lease: timedelta, key_limit: int | None
) -> Steps[Generation | None]:
    params = {
        "worker_id": worker,
        "now": now,
        "lease_expires_at": _later(now, lease, "a lease"),
        "default_limit": key_limit,
    }
    claimed: Generation | None = yield from _claim_undecided(params, True)
    return _took(claimed)


@writes_fixed((("claim_fast", _fast),), _claim_params, _claim_finish, more=_claim_more, alone=True)
def claim_next(
    worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, owner_limit: int | None = None
) -> tuple[str | None, timedelta, int | None]:
    """Take the next pending generation in the queue's order for ``worker_id`` (pending → processing), or
    None if none is ready.

    The order: the highest priority first; within one priority, the owner key with the fewest generations
    processing, then the oldest. A generation whose ``run_after`` is still ahead waits. ``owner_limit``: how
    many generations of one owner key may be processing at once, for keys without a limit of their own
    (``set_owner_limit``); None: no limit. Generations without an owner key are never limited.
    """
    return (
        validate.name(worker_id, "worker_id"),
        lease_of(validate.seconds(lease_seconds, "lease_seconds")),
        _limit(owner_limit),
    )


@writer
def claim_batch(
    worker_id: str,
    count: int,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    owner_limit: int | None = None,
) -> Steps[list[Generation]]:
    """Take up to ``count`` pending generations at once, in the order ``claim_next`` would take them one by
    one (each counted against its owner key's limit), in one transaction."""
    worker = validate.name(worker_id, "worker_id")
    limit = validate.integer(count, "count", 1, validate.MAX_PAGE)
    lease = lease_of(validate.seconds(lease_seconds, "lease_seconds"))
    key_limit = _limit(owner_limit)
    now = yield NOW
    params = {
        "worker_id": worker,
        "now": now,
        "lease_expires_at": _later(now, lease, "a lease"),
        "default_limit": key_limit,
    }
    fast = Call("claim_fast", params, _fast_batch)  # the same step for each claim
    claimed: list[Generation] = []
    while len(claimed) < limit:
        one: Generation | _Undecided | None = yield fast
        if isinstance(one, _Undecided):  # PostgreSQL: never wait for a lock once this batch has written
            one = yield from _claim_undecided(params, not claimed)
        if one is None:
            break  # no lane has a ready job and room
        claimed.append(one)
        _took(one)
    return claimed

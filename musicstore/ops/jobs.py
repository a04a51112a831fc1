"""A job's life: create, claim, heartbeat, complete, fail, cancel, requeue, delete, reset.

Every status change is one conditional UPDATE whose row count decides it; when it matches no row,
``_explain`` reads the row to say why (not found, another status, or another worker's lease).

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

import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from .. import validate
from ..errors import (
    Cancelled,
    ConfirmationRequired,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    NotFound,
)
from ..ids import check_id, new_id
from ..models import Generation, Requeued, RetryPolicy, Status, columns, prompt_digest
from .prompts import digest_taken
from .reads import GENERATION
from .steps import EXPLAIN, MORE, NOW, Call, Explain, More, Params, Steps, writer, writes_fixed

DEFAULT_LEASE_SECONDS = 300.0
"""How long a claim is held without a heartbeat before ``requeue_expired`` may take it back."""
DEFAULT_MAX_ATTEMPTS = 3
"""How many claims a generation gets before a failure (or expired lease) is final."""
RESET_CONFIRMATION = "delete everything"
"""The exact ``confirm=`` argument ``reset_database`` requires."""
TRACKED = columns("id")
"""What ``create_generation`` reads of the prompt row it counted a use of: that there is one."""
MIN_PRIORITY, MAX_PRIORITY = -32_768, 32_767
"""The range of ``priority`` (the schema checks it too)."""
MAX_OWNER_LIMIT = 1_000_000
"""The largest limit on an owner key's processing jobs."""
CANDIDATES = 8
"""How many lanes one claim ranks and tries, best first, before it returns None (a lane is skipped when
another claimer took its last ready job, or, on PostgreSQL, holds its lock, meanwhile)."""
HEADS = columns("owner_key", "max_running")
DECIDED = columns("owner_key", "max_running", "locked")
LOCKED = columns("locked")
NO_RETRY_DELAY = RetryPolicy(base_seconds=0.0)
"""The default of ``fail`` and ``requeue_expired``: a retried job is claimable at once."""
_NO_DELAY = {
    "base_seconds": NO_RETRY_DELAY.base_seconds,
    "cap_seconds": NO_RETRY_DELAY.cap_seconds,
    "jitter": NO_RETRY_DELAY.jitter,
}
"""``NO_RETRY_DELAY``'s query parameters (only ever spread into a call's parameters, never changed)."""


Stamp = Callable[[datetime], Any]
"""A ``Fixed`` write's ``stamp``: a moment as the backend binds it."""

_LEASES: dict[float, timedelta] = {}
"""``lease_of``'s timedeltas by their seconds."""


def lease_of(seconds: float) -> timedelta:
    """``timedelta(0, seconds)``, kept for the few lease lengths a process uses (made from a float it costs
    about as much as the rest of a heartbeat's checks)."""
    lease = _LEASES.get(seconds)
    if lease is None:
        if len(_LEASES) >= 64:
            _LEASES.clear()
        lease = _LEASES[seconds] = timedelta(0, seconds)
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


def _fast(names: Sequence[str]) -> Callable[[Sequence[Any]], Generation | _Undecided]:
    """``claim_fast``'s row reader: the claimed generation, or ``UNDECIDED`` for its row of NULLs."""
    build = GENERATION(names)
    at = list(names).index("id")

    def read(row: Sequence[Any]) -> Generation | _Undecided:
        return UNDECIDED if row[at] is None else build(row)

    return read


def _ids(names: Sequence[str]) -> Callable[[Sequence[Any]], Any]:
    """A row reader of the ``id`` column alone (its value, not a one-item row)."""
    return itemgetter(list(names).index("id"))


def _create_params(now: datetime, stamp: Stamp, checked: tuple[Params, str, Any]) -> tuple[Params, Params]:
    fields, encoded, _ = checked
    at, text, run_after = stamp(now), fields["prompt"], fields["run_after"]
    digest = prompt_digest(text)
    insert = {**fields, "created_at": at, "metadata": encoded, "prompt_digest": digest}
    if run_after is not None:
        insert["run_after"] = stamp(run_after)
    return {"digest": digest, "text": text, "now": at}, insert


def _created(fields: Params, now: datetime, encoded: str, metadata: dict[str, Any] | None) -> Generation:
    kept = {} if metadata is None else validate.stored_metadata(metadata, encoded)
    return Generation(**fields, created_at=now, status=Status.PENDING, metadata=kept)


def _create_finish(found: list[Any], now: datetime, checked: tuple[Params, str, Any]) -> Generation:
    if found[0] is None:  # the prompt upsert updates only a row with the same text (nothing was inserted)
        raise digest_taken()
    return _created(checked[0], now, checked[1], checked[2])


def _create_first(
    fields: Params, encoded: str, metadata: dict[str, Any] | None
) -> Callable[[datetime], Steps[Generation | None]] | None:
    """With an idempotency key: the generation created with it before (the key's lock taken first), after
    checking it was asked the same; None: create it."""
    if fields["idempotency_key"] is None:
        return None
    return functools.partial(_created_before, fields=fields, metadata=metadata)


def _created_before(
    now: datetime, fields: Params, metadata: dict[str, Any] | None
) -> Steps[Generation | None]:
    key = fields["idempotency_key"]
    yield Call("lock_idempotency_key", {"idempotency_key": key}, LOCKED)
    earlier: Generation | None = yield Call("get_by_idempotency_key", {"idempotency_key": key}, GENERATION)
    if earlier is not None:
        _same_request(earlier, {**fields, "metadata": dict(metadata or {})})
    return earlier


@writes_fixed(
    (("track_prompt", TRACKED), ("insert_generation", None)),
    _create_params,
    _create_finish,
    first=_create_first,
)
def create_generation(
    prompt: str,
    *,
    model_name: str,
    duration_seconds: float,
    sample_rate: int = 32_000,
    channels: int = 2,
    model_version: str | None = None,
    metadata: dict[str, Any] | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    owner_key: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Params, str, dict[str, Any] | None]:
    """Enqueue a pending generation and count its prompt's use, in one transaction.

    ``priority``: higher is claimed first (-32768 to 32767). ``run_after``: not claimed before this moment.
    ``owner_key``: the user or tenant it runs for (claims are fair across keys; see ``set_owner_limit``).
    ``idempotency_key``: when a generation was created with this key before, it is returned instead of a new
    one (race-safe across processes); if that one was asked with another prompt, model, length, rate,
    channels, metadata, priority or owner key, ``IdempotencyConflict`` is raised (a completed one's metadata
    has its export's figures merged in: it agrees when it holds the asked keys with the asked values). Keys
    are unique among all generations while their row exists.
    """
    encoded = "{}" if metadata is None else validate.metadata(metadata)
    key = validate.name(idempotency_key, "idempotency_key", optional=True)
    fields: Params = {
        "id": new_id(),
        "prompt": validate.prompt(prompt),
        "model_name": validate.name(model_name, "model_name"),
        "model_version": validate.name(model_version, "model_version", optional=True),
        "duration_seconds": validate.duration(duration_seconds),
        "sample_rate": validate.sample_rate(sample_rate),
        "channels": validate.channels(channels),
        "priority": validate.integer(priority, "priority", MIN_PRIORITY, MAX_PRIORITY),
        "run_after": None if run_after is None else validate.moment(run_after, "run_after"),
        "owner_key": validate.name(owner_key, "owner_key", optional=True),
        "idempotency_key": key,
    }
    return fields, encoded, metadata


_REQUEST = (
    *("prompt", "model_name", "model_version", "duration_seconds", "sample_rate", "channels"),
    *("metadata", "priority", "owner_key"),
)
"""What two creations with one idempotency key must agree on (``run_after`` may differ: a client retrying
a request may compute it again)."""


def _agrees(earlier: Generation, asked: Params, name: str) -> bool:
    kept, wanted = getattr(earlier, name), asked[name]
    if name == "metadata" and earlier.status is Status.COMPLETED:
        # completing merged the export's figures (and merge_metadata more) into the row's: the keys asked
        # are there as asked
        return all(key in kept and kept[key] == value for key, value in wanted.items())
    return bool(kept == wanted)


def _same_request(earlier: Generation, asked: Params) -> None:
    differ = [name for name in _REQUEST if not _agrees(earlier, asked, name)]
    if differ:
        raise IdempotencyConflict(
            f"idempotency key {asked['idempotency_key']!r} was used for generation {earlier.id} with another "
            f"{', '.join(differ)}; use a new key for a new request",
            existing_id=earlier.id,
        )


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
    fast = Call("claim_fast", params, _fast)  # the same step for each claim
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


def _explain(generation_id: str, wanted: str, worker_id: str | None = None) -> Steps[Exception]:
    """Why a conditional UPDATE matched no row: the error to raise."""
    row: Generation | None = yield Call("get_generation", {"id": generation_id}, GENERATION)
    if row is None:
        return NotFound(f"no generation with id {generation_id}")
    current, owner = row.status, row.worker_id
    if worker_id is not None and (current != Status.PROCESSING or owner != worker_id):
        holder = f"processed by worker {owner!r}" if current == Status.PROCESSING else current
        if current == Status.CANCELLED and owner == worker_id:
            return Cancelled(
                f"generation {generation_id} was cancelled while worker {worker_id!r} ran it; stop work on "
                "it and drop the result",
                current=current,
                owner=owner,
            )
        return LeaseLost(
            f"generation {generation_id} is {holder}: worker {worker_id!r} no longer owns it (cancelled, or "
            "its lease expired and it was requeued); stop work on it and drop the result",
            current=current,
            owner=owner,
        )
    return InvalidTransition(
        f"generation {generation_id} is {current}; it cannot be {wanted} from that status", current=current
    )


def _heartbeat_params(
    now: datetime, stamp: Stamp, checked: tuple[str, str | None, timedelta]
) -> tuple[Params]:
    gid, worker, lease = checked
    return ({"id": gid, "worker_id": worker, "lease_expires_at": stamp(_later(now, lease, "a lease"))},)


def _heartbeat_finish(
    found: list[int], now: datetime, checked: tuple[str, str | None, timedelta]
) -> datetime | Explain:
    return now + checked[2] if found[0] == 1 else EXPLAIN


def _heartbeat_explain(gid: str, worker: str | None, lease: timedelta) -> Steps[Exception]:
    return _explain(gid, "given a heartbeat", worker)


@writes_fixed((("heartbeat", None),), _heartbeat_params, _heartbeat_finish, _heartbeat_explain, alone=True)
def heartbeat(
    generation_id: str, worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> tuple[str, str | None, timedelta]:
    """Extend the lease of a generation ``worker_id`` is processing; returns the new expiry."""
    return (
        check_id(generation_id),
        validate.name(worker_id, "worker_id"),
        lease_of(validate.seconds(lease_seconds, "lease_seconds")),
    )


@writer
def lock_for_completion(generation_id: str, *, worker_id: str | None = None) -> Steps[Generation]:
    """The processing row, locked until the transaction ends (``get_generation_for_update``: FOR UPDATE on
    PostgreSQL, where SQLite's write transaction already excludes the others), checked as
    ``complete_generation`` checks it, with the same errors (NotFound, InvalidTransition, LeaseLost,
    Cancelled); nothing written.

    ``musicstore.recording`` takes it before it puts a file, in the transaction that completes the row after
    the put: the claim is checked and no other session can change the row meanwhile, while the completing
    UPDATE (whose triggers take their rows' locks: the session's shard of the totals, the owner key's lane)
    runs only once the file is in, just before the commit."""
    gid = check_id(generation_id)
    worker = validate.name(worker_id, "worker_id", optional=True)
    current: Generation | None = yield Call("get_generation_for_update", {"id": gid}, GENERATION)
    if (
        current is None
        or current.status is not Status.PROCESSING
        or (worker is not None and current.worker_id != worker)
    ):
        raise (yield from _explain(gid, "completed", worker))
    return current


@writer
def complete_generation(
    generation_id: str,
    *,
    file_path: str,
    file_size_bytes: int,
    generation_time_seconds: float | None = None,
    metadata: dict[str, Any] | None = None,
    worker_id: str | None = None,
) -> Steps[Generation]:
    """processing → completed, recording the file; ``metadata`` is merged into the row's (top-level keys).

    ``generation_time_seconds`` defaults to the time since the claim. With ``worker_id`` only that worker's
    claim can complete (a worker whose lease was taken over gets LeaseLost).
    """
    gid = check_id(generation_id)
    path = validate.relative_path(file_path)
    size = validate.file_size(file_size_bytes)
    worker = validate.name(worker_id, "worker_id", optional=True)
    if metadata is not None:
        validate.check_metadata(metadata)  # encoded once, merged with the row's, below
    if generation_time_seconds is not None:
        generation_time_seconds = validate.seconds(
            generation_time_seconds, "generation_time_seconds", positive=False
        )
    now: datetime = yield NOW
    current: Generation | None = yield Call("get_generation_for_update", {"id": gid}, GENERATION)
    if current is None or current.status is not Status.PROCESSING:
        raise (yield from _explain(gid, "completed", worker))
    if generation_time_seconds is None:
        started = current.started_at or now
        seconds = max((now - started).total_seconds(), 0.0)
    else:
        seconds = generation_time_seconds
    merged = {**current.metadata, **metadata} if metadata else current.metadata
    encoded = validate.metadata(merged, checked=True)  # both halves are checked already
    changed = yield Call(
        "complete_generation",
        {
            "id": gid,
            "worker_id": worker,
            "now": now,
            "file_path": path,
            "file_size_bytes": size,
            "generation_time_seconds": seconds,
            "metadata": encoded,
        },
    )
    if changed != 1:
        raise (yield from _explain(gid, "completed", worker))
    current.status, current.completed_at, current.lease_expires_at = Status.COMPLETED, now, None
    current.file_path, current.file_size_bytes, current.generation_time_seconds = path, size, seconds
    current.metadata = validate.stored_metadata(merged, encoded) if metadata else merged
    current.error_message = None
    return current  # the row as updated: this snapshot was read in the same transaction


@dataclass(slots=True)
class Attempt:
    """A claimed generation's run by ``worker_id`` in this process (``watching``) and what a ``fail`` made
    of it meanwhile, from any thread or task of this process: ``ended`` pending (a retry) or failed, None
    while no ``fail`` of this attempt matched its row. A worker's handler that retried or failed its own job
    is known by it, which the row cannot tell once the attempt is over (a retry clears the row's worker, as
    ``requeue_expired`` does; ``fail_expired`` keeps it, as a handler's ``fail`` does)."""

    generation_id: str
    worker_id: str
    ended: Status | None = None


_ATTEMPTS: dict[str, list[Attempt]] = {}
"""The attempts being watched, by generation id (a few: one per worker running a job)."""
_ATTEMPTS_LOCK = threading.Lock()


@contextmanager
def watching(generation_id: str, worker_id: str) -> Iterator[Attempt]:
    """Watch ``worker_id``'s attempt at ``generation_id`` inside the block: a ``fail`` of this process that
    moves the row from processing (``worker_id``'s, or with no worker id given) is noted in the ``Attempt``
    (the first one: a later fail is another attempt's). Noted as the write is made, in its transaction: a
    ``fail`` inside a ``Store.transaction`` rolled back afterwards is noted all the same."""
    attempt = Attempt(generation_id, worker_id)
    with _ATTEMPTS_LOCK:
        _ATTEMPTS.setdefault(generation_id, []).append(attempt)
    try:
        yield attempt
    finally:
        with _ATTEMPTS_LOCK:
            watched = _ATTEMPTS[generation_id]
            watched.remove(attempt)
            if not watched:
                del _ATTEMPTS[generation_id]


def _ended(row: Params, status: Status) -> None:
    """Note that ``fail`` moved ``row`` (its id and worker id) to ``status``, in the watched attempts it
    ended (``watching``)."""
    if not _ATTEMPTS:  # nothing watched: a fail outside a worker's handler
        return
    with _ATTEMPTS_LOCK:
        for attempt in _ATTEMPTS.get(row["id"], ()):
            if attempt.ended is None and row["worker_id"] in (None, attempt.worker_id):
                attempt.ended = status


def _retry_params(now: datetime, stamp: Stamp, checked: tuple[Params, Params, bool]) -> tuple[Params]:
    _backoff_fits(now, checked[1])
    return ({**checked[0], **checked[1], "now": stamp(now)},)


def _retry_finish(found: list[int], now: datetime, checked: tuple[Any, ...]) -> Status | More:
    if found[0] != 1:
        return MORE  # no attempt left (or not processing): fail it
    _ended(checked[0], Status.PENDING)
    return Status.PENDING


def _failed(now: datetime, row: Params, retried: Params, retry: bool) -> Steps[Status]:
    """processing → failed (``fail``'s second statement, or its only one without ``retry``)."""
    changed = yield Call("fail_generation", {**row, "now": now})
    if changed != 1:
        raise (yield from _explain(row["id"], "failed", row["worker_id"]))
    _ended(row, Status.FAILED)
    return Status.FAILED


def _fail_first(row: Params, retried: Params, retry: bool) -> Callable[[datetime], Steps[Status]] | None:
    """Without ``retry``: the failure alone (its only statement)."""
    return None if retry else functools.partial(_failed, row=row, retried=retried, retry=retry)


@writes_fixed(
    (("retry_generation", None),), _retry_params, _retry_finish, first=_fail_first, more=_failed, alone=True
)
def fail(
    generation_id: str,
    error_message: str,
    *,
    retry: bool = True,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    worker_id: str | None = None,
    backoff: RetryPolicy | None = None,
) -> tuple[Params, Params, bool]:
    """processing → pending when ``retry`` and attempts < ``max_attempts``, else → failed (a dead letter).

    Returns the new status. The error message is kept on the row either way. ``backoff``: when the retried
    generation may be claimed again (``RetryPolicy``: exponential in its attempts, with jitter); None: at
    once.
    """
    gid = check_id(generation_id)
    message = validate.message(error_message, "error_message")
    retry = validate.flag(retry, "retry")
    attempts = validate.integer(max_attempts, "max_attempts", 1)
    worker = validate.name(worker_id, "worker_id", optional=True)
    retried = {"max_attempts": attempts, **_backoff(backoff)}
    return {"id": gid, "worker_id": worker, "error_message": message}, retried, retry


def _cancel_params(now: datetime, stamp: Stamp, checked: tuple[str, str | None]) -> tuple[Params]:
    return ({"id": checked[0], "now": stamp(now), "reason": checked[1]},)


def _cancel_finish(found: list[int], now: datetime, checked: tuple[str, str | None]) -> Explain | None:
    return None if found[0] == 1 else EXPLAIN


def _cancel_explain(gid: str, why: str | None) -> Steps[Exception]:
    return _explain(gid, "cancelled")


@writes_fixed((("cancel_generation", None),), _cancel_params, _cancel_finish, _cancel_explain, alone=True)
def cancel(generation_id: str, reason: str | None = None) -> tuple[str, str | None]:
    """pending|processing → cancelled. A worker still running it finds out at its next heartbeat."""
    return check_id(generation_id), validate.message(reason, "reason", optional=True)


def _backoff(policy: RetryPolicy | None) -> dict[str, float]:
    if policy is None:
        return _NO_DELAY
    if not isinstance(policy, RetryPolicy):
        raise InvalidInput(f"backoff must be a RetryPolicy or None, got {type(policy).__name__}")
    return {"base_seconds": policy.base_seconds, "cap_seconds": policy.cap_seconds, "jitter": policy.jitter}


def _requeue_params(
    now: datetime, stamp: Stamp, checked: tuple[int, dict[str, float]]
) -> tuple[Params, Params]:
    _backoff_fits(now, checked[1])
    params = {
        "now": stamp(now),
        "max_attempts": checked[0],
        **checked[1],
    }  # one dict for both: fail_expired's are in it
    return params, params


def _requeue_finish(found: list[list[str]], now: datetime, checked: tuple[Any, ...]) -> Requeued:
    requeued, failed = found
    requeued.sort()
    failed.sort()
    return Requeued(requeued, failed)


@writes_fixed((("requeue_expired", _ids), ("fail_expired", _ids)), _requeue_params, _requeue_finish)
def requeue_expired(
    *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, backoff: RetryPolicy | None = None
) -> tuple[int, dict[str, float]]:
    """Take back every processing generation whose lease expired: → pending (claimable after ``backoff``,
    as ``fail``'s), or → failed if none is left."""
    delay = _NO_DELAY if backoff is None else _backoff(backoff)
    return validate.integer(max_attempts, "max_attempts", 1), delay


@writer
def update_generation_status(
    generation_id: str, status: Status | str, *, error_message: str | None = None
) -> Steps[None]:
    """Move a generation to ``status`` along the status machine (the 0.1 compatibility transition).

    pending → processing is ``claim_next``'s job and completed needs a file (``complete_generation``),
    so this accepts cancelled, failed (no retry) and pending (a processing generation put back); for the
    other two it raises InvalidTransition (with ``.current``), or NotFound for an unknown id.
    """
    gid = check_id(generation_id)
    target = validate.status(status)
    validate.message(error_message, "error_message", optional=True)
    if target is Status.CANCELLED:
        yield from cancel.steps(gid, error_message)
    elif target is Status.FAILED:
        yield from fail.steps(gid, error_message or "failed", retry=False)
    elif target is Status.PENDING:
        yield from fail.steps(gid, error_message or "requeued", retry=True, max_attempts=1 << 30)
    else:
        row: Generation | None = yield Call("get_generation", {"id": gid}, GENERATION)
        if row is None:
            raise NotFound(f"no generation with id {gid}")
        raise InvalidTransition(
            f"generation {gid} is {row.status}; use "
            f"{'claim_next' if target is Status.PROCESSING else 'complete_generation'} to make a generation "
            f"{target}: it needs a worker id and lease, or a file",
            current=row.status,
        )


@writer
def delete_generation(generation_id: str) -> Steps[None]:
    """Delete a generation's row (not its file; see cleanup). A processing one must be cancelled first."""
    gid = check_id(generation_id)
    deleted = yield Call("delete_generation", {"id": gid})
    if deleted != 1:
        raise (yield from _explain(gid, "deleted"))


@writer
def reset_database(*, confirm: str) -> Steps[None]:
    """Delete every generation and prompt, and the lanes kept from them (owner limits stay). ``confirm`` must
    be exactly ``RESET_CONFIRMATION``."""
    if confirm != RESET_CONFIRMATION:
        raise ConfirmationRequired(
            f"reset_database deletes every generation and prompt; pass confirm={RESET_CONFIRMATION!r}"
        )
    yield Call("delete_all_generations", {})
    yield Call("delete_all_lanes", {})
    yield Call("delete_all_prompts", {})

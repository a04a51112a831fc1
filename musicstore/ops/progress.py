"""Progress from inside a running job, and a pending job's place in the queue.

``report_progress`` writes a worker's fraction and stage on its row, only while the worker still owns it: a
cancelled job raises ``Cancelled`` and a job taken back raises ``LeaseLost``, so a progress report is also
where a worker learns to stop. ``Coalescer`` decides in Python which reports are written (a chatty worker
cannot flood the database with writes; a dropped report reads the row, ``still_running``, to raise as a
written one); the drivers (``Store.report_progress``, ``AsyncStore.report_progress``) keep one per store.
``queue_position`` counts the pending jobs ahead of one in the claim's order and estimates its wait from
recent throughput.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .. import validate
from ..errors import InvalidInput, NotFound, shown
from ..ids import check_id
from ..models import Generation, Status, columns, to_datetime
from .jobs import _explain, _later, claim_epoch, lease_of
from .reads import GENERATION
from .steps import NOW, Call, Steps, reader, writer

PROGRESS_INTERVAL_SECONDS = 1.0
"""The least time between two written progress reports of one job by one worker (a new stage is written at
once, and so is a fraction of 1)."""
MAX_STAGE_CHARS = 64
"""The longest stage label (the schema checks it too)."""
THROUGHPUT_WINDOW_SECONDS = 600.0
"""How far back ``queue_position`` counts completions for its throughput (10 minutes)."""
THROUGHPUT_SAMPLE = 500
"""``queue_position``'s throughput reads at most this many completions (plus one): when more completed in its
window, the rate is that of the latest ones (``QueuePosition``), so its cost does not grow with the service's
throughput."""
MAX_AHEAD = 100_000
"""``queue_position`` stops counting the jobs ahead here (``QueuePosition.capped``): at most this many index
entries are read."""
_TRACKED = 4_096
"""How many (job, worker) pairs a ``Coalescer`` remembers; the oldest is forgotten first."""
COUNT = columns("n")
RECENT = columns("n", "oldest")
_Entry = tuple[float, str | None, int | None]
"""What a ``Coalescer`` remembers of a pair: when its last report was written, its stage, its claim."""


def fraction(value: object) -> float:
    """A progress fraction: a finite number from 0 to 1 (any ``numbers.Real``: ``np.float32`` too), as a plain
    float (-0.0 as 0.0, as ``validate.number``)."""
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case (not NaN)
        return value or 0.0
    real = validate.real_number(value)
    if real is None or not 0 <= real <= 1:  # an int beyond any float: ±inf, out of range
        raise InvalidInput(f"fraction must be a number from 0 to 1, got {shown(value)}")
    return real or 0.0


def stage(value: object) -> str | None:
    """A stage label: None, or 1 to ``MAX_STAGE_CHARS`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"stage must be None or a str, got {type(value).__name__}")
    return validate.text(value, "stage", max_chars=MAX_STAGE_CHARS, blank=False)


class Coalescer:
    """Which progress reports are written: a report of a (job, worker) pair is written when it is the pair's
    first since this process last claimed the job for the worker (``jobs.claim_epoch``: a retried or
    requeued job's progress was cleared), when its stage differs from the last written one, when its
    fraction is 1, or when at least ``interval`` seconds (monotonic clock) passed since the pair's last
    written report (half its lease, for a report that extends a shorter one). Others are dropped.

    Decided in memory: one coalescer per store, shared by its threads (a dict's operations
    are atomic; two threads reporting the same pair at once may both write, which is harmless).
    """

    def __init__(
        self, interval: float = PROGRESS_INTERVAL_SECONDS, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = validate.seconds(interval, "interval", positive=False)
        self.clock = clock
        self._last: dict[tuple[str, str], _Entry] = {}
        """Per pair: when its last report was written, its stage, and the claim it was written under."""

    def due(
        self,
        generation_id: str,
        worker_id: str,
        done: float,
        label: str | None,
        lease: timedelta | None = None,
    ) -> bool:
        """Whether this report should be written (``wrote`` records it once it is). ``lease``: the lease a
        written report extends to (``report_progress(lease_seconds=...)``): a report is also due once half
        of it passed since the pair's last written one, so that a lease shorter than ``interval`` is
        extended before it runs out by a worker that reports often (else only every ``interval`` seconds:
        a worker reporting a hundred times a second lost its job to ``requeue_expired``)."""
        last = self._last.get((generation_id, worker_id))
        if last is None or last[1] != label or done >= 1.0:
            return True
        since = self.clock() - last[0]
        return (
            since >= self.interval
            or (lease is not None and since >= lease.total_seconds() / 2)
            or last[2] != claim_epoch(generation_id, worker_id)
        )

    def wrote(
        self,
        generation_id: str,
        worker_id: str,
        label: str | None,
        undo: list[Callable[[], None]] | None = None,
    ) -> None:
        """A report of the pair was written now. Written inside a transaction, ``undo`` is its list of what to
        do if it rolls back (``Transaction.undo``): the pair's entry before this report is put back then, so
        a report the database never kept does not keep the next one of its stage from being written."""
        key = (generation_id, worker_id)
        before = self._last.pop(key, None)  # re-inserted last: the dict stays in order of the latest write
        entry = self._last[key] = (self.clock(), label, claim_epoch(generation_id, worker_id))
        if len(self._last) > _TRACKED:
            self._last.pop(next(iter(self._last)), None)
        if undo is not None:
            undo.append(lambda: self._restore(key, entry, before))

    def _restore(self, key: tuple[str, str], entry: _Entry, before: _Entry | None) -> None:
        """The entry ``before`` the rolled-back ``entry`` back in place, unless a later report replaced it."""
        if self._last.get(key) is entry:
            del self._last[key]
            if before is not None:
                self._last[key] = before

    def forget(self, generation_id: str, worker_id: str) -> None:
        """Drop what is remembered of a pair (the next report of it is written)."""
        self._last.pop((generation_id, worker_id), None)


def rolled_back(undo: list[Callable[[], None]]) -> None:
    """A transaction rolled back: run its ``undo`` list (``Coalescer.wrote``'s), last first."""
    for step in reversed(undo):
        step()


@contextmanager
def undoing(undo: list[Callable[[], None]]) -> Iterator[None]:
    """``rolled_back(undo)`` if the block raises (a transaction's block, its BEGIN and its COMMIT)."""
    try:
        yield
    except BaseException:
        rolled_back(undo)
        raise


def coalescer(store: object) -> Coalescer:
    """The store's coalescer, made on its first progress report: on the monotonic clock, or on the store's
    own where it was given one (a ``FakeClock``: its leases run on it, and a report due at half a lease by
    it was dropped by the monotonic clock, its job taken back at the lease's end)."""
    found: Coalescer | None = store.__dict__.get("_coalescer")
    if found is None:
        from ..runner import utcnow  # the drivers' default clock (the runner imports ops)

        clock = getattr(store, "clock", utcnow)
        elapsed = time.monotonic if clock is utcnow else (lambda: float(clock().timestamp()))
        found = store.__dict__.setdefault("_coalescer", Coalescer(clock=elapsed))
    return found


def checked_report(
    generation_id: str,
    worker_id: str,
    done: object,
    label: object,
    lease_seconds: object = None,
) -> tuple[str, str, float, str | None, timedelta | None]:
    """The arguments of a progress report, checked (before any coalescing: a bad report always raises)."""
    worker = validate.name(worker_id, "worker_id")
    assert worker is not None
    lease = None if lease_seconds is None else lease_of(validate.seconds(lease_seconds, "lease_seconds"))
    return check_id(generation_id), worker, fraction(done), stage(label), lease


@writer
def report_progress(
    generation_id: str,
    worker_id: str,
    fraction: float,
    stage: str | None = None,
    *,
    lease_seconds: float | None = None,
) -> Steps[datetime]:
    """Write the progress of a generation ``worker_id`` is processing (no coalescing: the drivers' method
    coalesces); with ``lease_seconds``, also extend its lease to at least that long from now, as a
    heartbeat does (a longer lease is kept; without it the lease is the claim's or last heartbeat's). Returns
    when it was written. Cancelled when it was cancelled, LeaseLost when it was taken back, NotFound when it
    is gone."""
    gid, worker, done, label, lease = checked_report(generation_id, worker_id, fraction, stage, lease_seconds)
    now: datetime = yield NOW
    expires = None if lease is None else _later(now, lease, "a lease")
    params = {"id": gid, "worker_id": worker, "progress": done, "stage": label, "now": now}
    params["lease_expires_at"] = expires
    if (yield Call("report_progress", params)) != 1:
        raise (yield from _explain(gid, "given progress", worker))
    return now


@reader
def still_running(generation_id: str, worker_id: str) -> Steps[None]:
    """A dropped (coalesced) progress report's check: one primary-key read, no write. Raises as a written
    report would (Cancelled, LeaseLost, NotFound) unless ``worker_id`` still processes the generation, so
    that a worker learns of a cancel at its very next report, written or not."""
    row: Generation | None = yield Call("get_generation", {"id": generation_id}, GENERATION)
    if row is None or row.status != Status.PROCESSING or row.worker_id != worker_id:
        raise (yield from _explain(generation_id, "given progress", worker_id))


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Where a generation stands in the queue.

    ``ahead``: pending generations of its lane (its owner key; jobs without a key share one lane) that the
    claim takes before it: those of a higher priority, then the older ones of its priority, due now (not
    waiting for their ``run_after``; None unless it is pending). Other keys' jobs are not counted: the claim
    interleaves the lanes (docs/queue.md), so they add to the wait as the store's throughput is shared.
    ``capped``: the count stopped at ``MAX_AHEAD``.
    ``completed_per_minute``: the store's recent throughput, all lanes: its completions over the last
    ``window_seconds``, or, when more than ``THROUGHPUT_SAMPLE`` (500) completed in them, the pace of the
    latest 500 (500 over the time since the completion before them), so that its read stays bounded.
    ``eta_seconds``: for a pending generation, (ahead + 1) / that throughput, in whole seconds: when it should
    be done if its lane had the store's recent throughput to itself (a lower bound while other lanes wait
    too); for one waiting for its ``run_after``, no less than the time until then plus one job's time
    (1 / throughput). None without completions in the window, or unless it is pending.
    """

    generation_id: str
    status: Status
    ahead: int | None
    capped: bool
    completed_per_minute: float
    window_seconds: float
    eta_seconds: float | None


def _throughput(now: datetime, since: datetime, window: float) -> Steps[float]:
    """Completions per second: those since ``since`` over ``window`` seconds, or, when more than
    ``THROUGHPUT_SAMPLE`` completed since then, the latest ``THROUGHPUT_SAMPLE`` over the time from the
    completion before them to ``now`` (one bounded walk of the completed index; if that time is not positive,
    completion times ahead of this clock, what was read over the window)."""
    sample = THROUGHPUT_SAMPLE
    completed, oldest = yield Call("recent_completions", {"since": since, "cap": sample + 1}, RECENT)
    if completed > sample:
        span = (now - to_datetime(oldest)).total_seconds()
        if span > 0:
            return float(sample / span)
    return float(completed / window)


@reader
def queue_position(
    generation_id: str, *, window_seconds: float = THROUGHPUT_WINDOW_SECONDS
) -> Steps[QueuePosition]:
    """How many pending generations of its lane are ahead of this one and when it should be done at the
    recent rate (none for a job of a paused key). Index range counts only, bounded: the lane's jobs ahead
    (each row read for its ``run_after``), at most ``MAX_AHEAD``; the latest completions, at most
    ``THROUGHPUT_SAMPLE`` + 1 entries, however busy the store.
    Raises NotFound if there is no such generation.
    """
    gid = check_id(generation_id)
    window = validate.seconds(window_seconds, "window_seconds")
    row: Generation | None = yield Call("get_generation", {"id": gid}, GENERATION)
    if row is None:
        raise NotFound(f"no generation with id {gid}")
    now: datetime = yield NOW
    try:
        since = now - timedelta(seconds=window)
    except OverflowError:  # a clock in the first days of the year 1: the window starts with the calendar
        since = datetime.min.replace(tzinfo=UTC)
    rate = yield from _throughput(now, since, window)
    ahead: int | None = None
    capped = False
    eta: float | None = None
    if row.status is Status.PENDING:
        lane = {"owner_key": row.owner_key or "", "priority": row.priority, "now": now, "cap": MAX_AHEAD}
        ahead = (yield Call("count_lane_higher", lane, COUNT))[0]
        if ahead < MAX_AHEAD:
            before = {**lane, "created_at": row.created_at, "id": gid, "cap": MAX_AHEAD - ahead}
            ahead += (yield Call("count_lane_before", before, COUNT))[0]
        capped = ahead >= MAX_AHEAD
        paused = False
        if row.owner_key is not None:  # a paused key's jobs are claimed when it is resumed: no estimate
            limit = yield Call("owner_limit", {"owner_key": row.owner_key}, COUNT)
            paused = limit is not None and limit[0] == 0
        if rate > 0 and not paused:
            eta = (ahead + 1) / rate
            if row.run_after is not None and row.run_after > now:  # no claim takes it before: then its job
                eta = max(eta, (row.run_after - now).total_seconds() + 1 / rate)
    return QueuePosition(
        gid, row.status, ahead, capped, round(rate * 60.0, 6), window, None if eta is None else math.ceil(eta)
    )

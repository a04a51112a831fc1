"""The worker loop's plan (``musicstore.worker``, which re-exports these names): the steps it yields
(:class:`Claim`, :class:`Handle`, :class:`Fail`, :class:`Pause`) and the report it keeps
(:class:`WorkerReport`, and how a job no longer the worker's is counted in it: :func:`count_lost`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from .. import waiting
from ..errors import DatabaseError, LeaseLost
from ..models import Generation, Status
from .checks import failure

log = logging.getLogger("musicstore.worker")  # the package's logger: the loop logs there


@dataclass(slots=True)
class WorkerReport:
    """What ``run`` did: jobs run to the end, cancelled while running, taken back, failed."""

    done: int = 0
    cancelled: int = 0
    lost: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.done + self.cancelled + self.lost + self.failed


@dataclass(frozen=True, slots=True)
class Claim:
    """Step: ``claim_next(worker_id, **options)``, and while it claims nothing and the worker is not
    stopping, sleep until an enqueue wakes it (at most ``WAIT_SLICE_SECONDS``) and claim again
    (``waiting.until``: one claim per sleep, the listener held throughout); the plan receives the claimed
    generation, or None once the worker is stopping."""

    worker_id: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Handle:
    """Step: run the handler on this claimed generation (what it returns is not used)."""

    generation: Generation


@dataclass(frozen=True, slots=True)
class Fail:
    """Step: ``fail(generation_id, message, **options)`` (a retry while attempts remain)."""

    generation_id: str
    message: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pause:
    """Step: sleep ``seconds`` before the next claim, ending at once when the worker is stopped (``stop()``
    during the pause, or before it)."""

    seconds: float


WorkerStep = Claim | Handle | Fail | Pause

OUTAGE_SECONDS = 300.0
"""How long a worker keeps claiming (and failing a job) through a lost PostgreSQL server before ``run`` ends
with the error: a restart or a failover is ridden out, a server gone for good is not waited on for ever."""


class Outage:
    """A worker's view of the database's reachability: its claims and fails that found the PostgreSQL
    connection lost (``waiting.connection_lost``: the server down, restarting, failed over) are paused and
    tried again every ``pause`` seconds (the worker's ``WAIT_SLICE_SECONDS``) for up to ``OUTAGE_SECONDS``,
    logged once as it begins and once as it ends."""

    def __init__(self, worker_id: str, pause: float) -> None:
        self.worker_id = worker_id
        self.pause = pause
        self.since: float | None = None

    def rides_out(self, exc: DatabaseError) -> bool:
        """Whether the step that raised ``exc`` is tried again after a pause (False: ``run`` ends with it)."""
        if not waiting.connection_lost(exc):  # never a DatabaseBusy
            return False
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning(
                "worker %s: the database is unreachable (%s); trying again every %g s for up to %g s",
                self.worker_id, exc, self.pause, OUTAGE_SECONDS,
            )  # fmt: skip
        return now - self.since <= OUTAGE_SECONDS

    def over(self) -> None:
        """A step reached the database: an outage in course is over."""
        if self.since is not None:
            down = time.monotonic() - self.since
            log.warning("worker %s: the database answers again after %.1f s", self.worker_id, down)
            self.since = None


Plan = Generator[WorkerStep, Any, WorkerReport]


def count_lost(
    report: WorkerReport,
    worker_id: str,
    generation_id: str,
    lost: LeaseLost,
    *,
    error: BaseException,
    ended: Status | None,
) -> None:
    """Count a job ``worker_id`` no longer owns (``lost``: its handler's or its ``fail``'s) as it ended
    before ``error`` (logged): done if it was completed (``ended``, noted in this process, or ``lost`` finds
    it completed under this worker), failed if a ``fail`` of this process ended this attempt while the
    handler ran (``ended``: pending, the handler retried it itself, or failed), else lost: taken back
    (``requeue_expired``, which clears the worker's id as a retry does, or fails the job keeping it as a
    ``fail`` does), or its worker's id changed."""
    if ended == Status.COMPLETED or (lost.owner == worker_id and lost.current == Status.COMPLETED):
        log.error(
            "worker %s: job %s was completed already when its handler ended with %s",
            worker_id,
            generation_id,
            failure(error),
        )
        report.done += 1
    elif ended == Status.CANCELLED:  # a Cancelled the handler caught before: the cancel stands
        report.cancelled += 1
    elif ended is not None:
        log.error(
            "worker %s: the handler had %s job %s itself (now %s) when it ended with %s",
            worker_id,
            "retried" if ended == Status.PENDING else "failed",
            generation_id,
            lost.current,
            failure(error),
        )
        report.failed += 1
    else:
        report.lost += 1

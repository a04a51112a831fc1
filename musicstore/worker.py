"""A worker loop: wait for a job, run it, report its progress, and stop cleanly on SIGTERM or a cancel.

``Worker(store, "gpu-0", handler).run()`` claims jobs one at a time (``claim_next(wait=...)``: woken by an
enqueue), calls ``handler(job)`` with a ``Job`` and goes on until stopped. The handler does the work, reports
progress through ``job.progress(...)`` (coalesced) and completes the generation itself (``export_generation``,
``complete_generation``). What the worker does with the outcome:

- the handler returns: the job is done (the handler completed it);
- it raises ``Cancelled`` (the job was cancelled: its next written progress report or heartbeat says so) or
  ``LeaseLost`` (the job was taken back): the job is dropped as it stands, nothing is written;
- it raises anything else: the job is failed with the error, retried while attempts remain
  (``fail(retry=True, max_attempts=..., backoff=...)``: with a ``RetryPolicy``, not claimed again before
  its backoff).

``stop()`` (or SIGTERM/SIGINT under ``handle_signals()``) lets the job in hand finish, claims no more and ends
``run``; the handler may look at ``job.stopping`` to cut its work short, and a cancel arriving meanwhile still
reaches it at its next report. See docs/queue.md.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from . import validate
from .errors import Cancelled, LeaseLost
from .models import Generation, RetryPolicy
from .ops import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS
from .store import Store

WAIT_SLICE_SECONDS = 1.0
"""The longest single ``claim_next(wait=...)`` of an idle worker: how soon it notices ``stop()``."""


@dataclass(slots=True)
class Job:
    """The job a worker's handler runs: the claimed generation and the calls a running job makes."""

    generation: Generation
    worker: Worker

    @property
    def id(self) -> str:
        return self.generation.id

    @property
    def stopping(self) -> bool:
        """The worker was asked to stop (SIGTERM): finish or cut short this job; no other is claimed."""
        return self.worker.stopping

    def progress(self, fraction: float, stage: str | None = None) -> bool:
        """Report progress (``Store.report_progress``: coalesced; whether it was written). A written report
        raises ``Cancelled`` if the job was cancelled, ``LeaseLost`` if it was taken back: let either pass."""
        return self.worker.store.report_progress(self.id, self.worker.worker_id, fraction, stage)

    def heartbeat(self) -> datetime:
        """Extend the lease (``Store.heartbeat``); raises ``Cancelled``/``LeaseLost`` as ``progress`` does."""
        return self.worker.store.heartbeat(
            self.id, self.worker.worker_id, lease_seconds=self.worker.lease_seconds
        )


@dataclass(slots=True)
class WorkerReport:
    """What ``Worker.run`` did: jobs run to the end, cancelled while running, taken back, failed."""

    done: int = 0
    cancelled: int = 0
    lost: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.done + self.cancelled + self.lost + self.failed


class Worker:
    """Claims and runs jobs one at a time with ``handler`` until stopped (or ``max_jobs`` were claimed).

    ``lease_seconds`` and ``claim_options`` go to each claim; ``max_attempts`` and ``backoff`` to the ``fail``
    of a job whose handler raised.
    """

    def __init__(
        self,
        store: Store,
        worker_id: str,
        handler: Callable[[Job], Any],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        claim_options: dict[str, Any] | None = None,
        backoff: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.worker_id = validate.name(worker_id, "worker_id") or worker_id
        self.handler = handler
        self.lease_seconds = validate.seconds(lease_seconds, "lease_seconds")
        self.max_attempts = validate.integer(max_attempts, "max_attempts", 1)
        self.claim_options = dict(claim_options or {})
        self.backoff = backoff
        self._stop = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Finish the job in hand, claim no more: ``run`` returns after it (safe from a signal handler)."""
        self._stop.set()

    @contextmanager
    def handle_signals(self, *signals: signal.Signals) -> Iterator[None]:
        """SIGTERM and SIGINT (or ``signals``) call ``stop()`` inside the block; the handlers before are put
        back after it. Main thread only (Python's rule for signal handlers)."""
        wanted = signals or (signal.SIGTERM, signal.SIGINT)

        def stopping(signum: int, frame: FrameType | None) -> None:
            self.stop()

        before = {sig: signal.signal(sig, stopping) for sig in wanted}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)

    def run(self, *, max_jobs: int | None = None) -> WorkerReport:
        """Claim and run jobs until ``stop()`` (or ``max_jobs`` claims); returns what happened to them."""
        limit = None if max_jobs is None else validate.integer(max_jobs, "max_jobs", 1)
        report = WorkerReport()
        while not self.stopping and (limit is None or report.claimed < limit):
            claimed = self.store.claim_next(
                self.worker_id,
                wait=WAIT_SLICE_SECONDS,
                lease_seconds=self.lease_seconds,
                **self.claim_options,
            )
            if claimed is not None:
                self._run_one(Job(claimed, self), report)
        return report

    def _run_one(self, job: Job, report: WorkerReport) -> None:
        try:
            self.handler(job)
        except Cancelled:
            report.cancelled += 1
        except LeaseLost:
            report.lost += 1
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"[:1000]
            try:
                self.store.fail(
                    job.id,
                    message,
                    retry=True,
                    max_attempts=self.max_attempts,
                    worker_id=self.worker_id,
                    backoff=self.backoff,
                )
            except Cancelled:  # cancelled as it failed: the cancel stands
                report.cancelled += 1
            except LeaseLost:
                report.lost += 1
            else:
                report.failed += 1
        else:
            report.done += 1


__all__ = ["WAIT_SLICE_SECONDS", "Job", "Worker", "WorkerReport"]

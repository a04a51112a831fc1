"""A worker loop: wait for a job, run it, report its progress, and stop cleanly on SIGTERM or a cancel.

``Worker(store, "gpu-0", handler).run()`` claims jobs one at a time (``claim_next``; while none is pending,
asleep until an enqueue wakes it: ``musicstore.waiting``), calls ``handler(job)`` with a ``Job`` and goes on
until stopped. ``AsyncWorker(async_store, "gpu-0", handler)`` is the same loop for asyncio: ``await
worker.run()``, an ``async def handler(job)`` with an ``AsyncJob`` whose ``progress`` and ``heartbeat`` are
awaited. The handler does the work, reports progress through ``job.progress(...)`` (coalesced) and completes
the generation itself (``export_generation``, ``complete_generation``). What the worker does with the outcome:

- the handler returns: the job is done (the handler completed it), or failed if the handler failed or retried
  it itself (its own ``fail``, below); one it returned with unfinished (no complete or fail of it noted, on
  a ``Store``/``AsyncStore``) is logged at WARNING, counted done and left to its lease; one whose
  ``Cancelled`` (below) it caught is counted cancelled;
- it raises ``Cancelled`` (the job was cancelled: its next progress report or heartbeat says so) or
  ``LeaseLost`` (the job was taken back): the job is dropped as it stands, nothing is written (a
  ``LeaseLost`` saying this worker's job is completed, as a report after the handler completed it raises,
  counts the job done; one after the handler retried or failed the job itself counts it failed);
- it raises anything else (an ``asyncio.CancelledError`` too, unless the worker's own task was cancelled:
  an await in the handler that another task cancelled): the error is logged with its traceback (ERROR,
  this module's logger) and the job is failed with it, retried while attempts remain
  (``fail(retry=True, max_attempts=..., backoff=...)``: with a ``RetryPolicy``, not claimed again before
  its backoff); a job deleted meanwhile (``NotFound``: cancelled and deleted while it ran) is dropped, and
  a job the handler completed, failed or retried itself before it raised (``complete_generation``, a
  ``fail`` such as ``export_generation(..., on_error="retry")``'s) is counted as it ended, done or failed
  (the error is logged), even when another worker claimed it again meanwhile. The worker learns of the
  handler's ``fail`` from the write itself (``ops.jobs.watching``: any thread or task of this process, not
  another process), not from the row, which after a retry looks as after ``requeue_expired``: a job taken
  back (requeued, or failed on its last attempt) is ``lost``. A handler that returns what its loop cannot
  run is such an error (``InvalidInput``): an ``AsyncWorker``'s that returns no awaitable (a plain
  function: it belongs to ``Worker``), a ``Worker``'s that returns an awaitable (its work never ran: it
  belongs to ``AsyncWorker``), or a generator (its body never ran); that job is failed (with retry) and
  ``run`` then raises the error, since every job would end alike;
- it raises a ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``...; an
  ``AsyncWorker``'s task's own cancel aside): the job goes back to the queue (``put_back``), then ``run``
  raises it.

A claim or a handler's job's ``fail`` that waited past the busy timeout (``DatabaseBusy``), or that found the
PostgreSQL server lost (for up to ``steps.OUTAGE_SECONDS``: ``steps.Outage``), is logged and tried again after
``WAIT_SLICE_SECONDS`` (``stop()`` ends the pause; a ``fail`` failing so once stopping ends ``run`` with its
error). Any other error of the store ends ``run`` with it.

``stop()`` (or SIGTERM/SIGINT under ``handle_signals()``) lets the job in hand finish, claims no more and ends
``run``; the handler may look at ``job.stopping`` to cut its work short, and a cancel arriving meanwhile still
reaches it at its next report. See docs/queue.md.

These decisions are written once, in ``plan``: a generator of steps (claim, run the handler, fail the job)
that keeps the ``WorkerReport``, as an operation of ``musicstore.ops`` is a generator of query calls.
``Worker.run`` answers its steps with blocking calls and ``AsyncWorker.run`` with awaited ones; an exception a
step raised is thrown back into the plan, which decides what it means.

Here the loops; in ``steps`` the plan's steps and report, ``jobs`` the handler's job, ``checks`` the checks
and a failed job's message (re-exported here), ``signals`` ``handle_signals``' handlers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any

from .. import validate, waiting
from ..errors import Cancelled, DatabaseBusy, DatabaseError, InvalidInput, LeaseLost, NotFound
from ..models import Generation, RetryPolicy, Status
from ..ops import DEFAULT_MAX_ATTEMPTS
from ..ops.jobs import Attempt, watching
from ..store import Store
from .checks import (
    MAX_ERROR_CHARS,
    _claim_options,
    _is_async_handler,
    _misfit,
    _sees_writes,
    _store_fits,
    _task_cancelled,
    _uncut,
    _unswallowed,
    _yielding,
    failure,
)
from .ctrl_c import put_back_interrupted, sigint_noted
from .jobs import AsyncJob, Job
from .signals import CtrlC, put_back, put_back_async, stopping_on
from .steps import Claim, Fail, Handle, Outage, Pause, Plan, WorkerReport, WorkerStep, count_lost

if TYPE_CHECKING:
    from ..aio import AsyncStore

WAIT_SLICE_SECONDS = 1.0
"""The longest sleep of an idle worker between two claims: how soon it notices ``stop()``."""

log = logging.getLogger(__name__)


class _Loop:
    """What ``Worker`` and ``AsyncWorker`` share: the settings, stopping, signals and the ``plan``."""

    def __init__(
        self,
        worker_id: str,
        *,
        lease_seconds: float | None,
        max_attempts: int,
        claim_options: dict[str, Any] | None,
        backoff: RetryPolicy | None,
    ) -> None:
        self.worker_id = validate.name(worker_id, "worker_id") or worker_id
        lease = None if lease_seconds is None else validate.seconds(lease_seconds, "lease_seconds")
        self.claim_options, self.lease_seconds = _claim_options(claim_options, lease)
        self.max_attempts = validate.integer(max_attempts, "max_attempts", 1)
        if backoff is not None and not isinstance(
            backoff, RetryPolicy
        ):  # checked now, not at a job's failure
            raise InvalidInput(f"backoff must be a RetryPolicy or None, got {type(backoff).__name__}")
        self.backoff = backoff
        self._stop = threading.Event()
        self._wakers: set[Callable[[], None]] = set()
        self._misfit: InvalidInput | None = None  # raised by a handler's result its loop cannot run
        self._seen = False  # whether a handler's complete or fail of its job is noted (``watching``)
        self._outage = Outage(self.worker_id, WAIT_SLICE_SECONDS)  # a lost server ridden out (each plan anew)

    def _run_handler(self, job: Any) -> Any:
        """The handler's result for ``job``; InvalidInput for one this loop cannot run (``_misfit``): it
        fails the job, then ends ``run``."""
        outcome = self.handler(job)  # type: ignore[attr-defined]
        misfit = _misfit(outcome, isinstance(self, AsyncWorker))
        if misfit is not None:
            self._misfit = InvalidInput(misfit)
            raise self._misfit
        return outcome

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Finish the job in hand, claim no more: ``run`` returns after it (safe from a signal handler and
        from another thread). A pause (``Pause``) ends at once."""
        self._stop.set()
        for wake in tuple(self._wakers):  # the pauses of an AsyncWorker (a Worker's waits on the event)
            wake()

    def handle_signals(self, *signals: signal.Signals) -> AbstractContextManager[None]:
        """SIGTERM and SIGINT (or ``signals``) call ``stop()`` inside the block; the handlers before are put
        back after it. Nested blocks of several workers (``AsyncWorker``s gathered) stop them all, whichever
        block is left first (one left while a later one is still in, as a gathered worker's run ends first,
        leaves the later one's handler in place, which stops the rest; the last one out puts back the handler
        the first found). Main thread only (Python's rule for signal handlers; an ``AsyncWorker`` runs its
        loop there, as ``asyncio.run`` does). A signal no handler can catch (SIGKILL, SIGSTOP, no signal at
        all), or a thread other than the main one, is ``InvalidInput``, with every handler left as it was."""
        return stopping_on(self.stop, signals)

    def plan(self, max_jobs: int | None = None) -> Plan:
        """The loop's decisions as steps, for ``run`` to answer: claim (waiting for work) until stopped or
        ``max_jobs`` were claimed; run the handler on each claimed job; count how it ended, failing (with
        retry) a job whose handler raised anything but ``Cancelled``/``LeaseLost``."""
        limit = None if max_jobs is None else validate.integer(max_jobs, "max_jobs", 1)
        return self._plan(limit)

    def _plan(self, limit: int | None) -> Plan:
        report = WorkerReport()
        claim = Claim(self.worker_id, {"lease_seconds": self.lease_seconds, **self.claim_options})
        retry = {
            "retry": True,
            "max_attempts": self.max_attempts,
            "worker_id": self.worker_id,
            "backoff": self.backoff,
        }
        outage = self._outage = Outage(self.worker_id, WAIT_SLICE_SECONDS)
        while not self.stopping and (limit is None or report.claimed < limit):
            try:
                claimed: Generation | None = yield claim
            except DatabaseBusy as exc:  # another writer held the database: not the worker's end
                log.warning("worker %s: %s; claiming again in %g s", self.worker_id, exc, WAIT_SLICE_SECONDS)
                yield Pause(WAIT_SLICE_SECONDS)
                continue
            except DatabaseError as exc:  # a lost server: ridden out for OUTAGE_SECONDS
                if not outage.rides_out(exc):
                    raise
                yield Pause(WAIT_SLICE_SECONDS)
                continue
            outage.over()
            if claimed is None:
                continue
            with watching(claimed.id, self.worker_id) as attempt:  # what the handler's own fail made of it
                try:
                    yield Handle(claimed)
                except Cancelled:
                    report.cancelled += 1
                except LeaseLost as lost:  # a report or heartbeat after the handler ended the job, too
                    count_lost(report, self.worker_id, claimed.id, lost, error=lost, ended=attempt.ended)
                except (Exception, asyncio.CancelledError) as exc:  # a CancelledError only the handler's own
                    log.error(
                        "worker %s: the handler of job %s raised %s", self.worker_id, claimed.id,
                        failure(exc), exc_info=exc,
                    )  # fmt: skip
                    yield from self._fail_counted(report, Fail(claimed.id, failure(exc), retry), exc, attempt)
                    if exc is self._misfit:  # the wrong loop for this handler: every job would end alike
                        raise exc
                else:  # done (as the handler said by returning), failed by its own ``fail``, or cancelled
                    if attempt.ended is None and self._seen:  # no complete or fail of it noted
                        log.warning(
                            "worker %s: the handler returned without completing or failing job %s in this "
                            "process: unless another process ended it, it stays processing until its lease "
                            "expires", self.worker_id, claimed.id,
                        )  # fmt: skip
                    if attempt.ended in (None, Status.COMPLETED):
                        report.done += 1
                    elif attempt.ended is Status.CANCELLED:  # it caught the Cancelled: the cancel stands
                        report.cancelled += 1
                    else:
                        report.failed += 1
        return report

    def _fail_counted(
        self, report: WorkerReport, step: Fail, error: BaseException, attempt: Attempt
    ) -> Generator[WorkerStep, Any, None]:
        """Fail the job (``step``) for ``error``, counted as that ends: failed, or cancelled, lost, or as the
        job ended already (``count_lost``)."""
        try:
            yield from self._fail(step)
        except Cancelled:  # cancelled as it failed: the cancel stands
            report.cancelled += 1
        except LeaseLost as lost:  # the worker's fail noted nothing: it matched no row
            count_lost(report, self.worker_id, step.generation_id, lost, error=error, ended=attempt.ended)
        except NotFound:  # deleted (cancelled first) while it ran
            report.lost += 1
        else:
            report.failed += 1

    def _fail(self, step: Fail) -> Generator[WorkerStep, Any, None]:
        """``step``, tried again after a pause while it waits past the busy timeout (``DatabaseBusy``: another
        writer held the lock) and the worker is not stopping: the job's error is kept, the loop goes on. A
        stop ends the pause for one last try; busy once stopping, the error ends ``run`` (the job's lease
        will expire)."""
        while True:
            try:
                yield step
            except DatabaseError as exc:
                if self.stopping or not (isinstance(exc, DatabaseBusy) or self._outage.rides_out(exc)):
                    raise
                log.warning("worker %s: failing job %s: %s; trying again in %g s", self.worker_id,
                            step.generation_id, exc, WAIT_SLICE_SECONDS)  # fmt: skip
                yield Pause(WAIT_SLICE_SECONDS)
            else:
                return self._outage.over()


class Worker(_Loop):
    """Claims and runs jobs one at a time with ``handler`` until stopped (or ``max_jobs`` were claimed).

    ``lease_seconds`` (None: ``DEFAULT_LEASE_SECONDS``, or claim_options') and ``claim_options``
    (``owner_limit``, ``lease_seconds``; checked when made) go to each claim;
    ``max_attempts`` and ``backoff`` to the ``fail`` of a job whose handler raised. An ``async def`` handler
    is refused (InvalidInput): ``AsyncWorker`` runs it.
    """

    def __init__(
        self,
        store: Store,
        worker_id: str,
        handler: Callable[[Job], Any],
        *,
        lease_seconds: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        claim_options: dict[str, Any] | None = None,
        backoff: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            worker_id,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            claim_options=claim_options,
            backoff=backoff,
        )
        _store_fits(store, awaited=False)
        _yielding(handler)
        if _is_async_handler(handler):  # its jobs would be counted done, never run, left processing
            raise InvalidInput("handler is an async function: run it with AsyncWorker on an AsyncStore")
        self.store, self._seen = store, _sees_writes(store)
        self.handler = handler
        self._ctrl_c = CtrlC()
        self._in_hand: Generation | None = None  # in ``run``: the claimed job, until the next claim

    def run(self, *, max_jobs: int | None = None) -> WorkerReport:
        """Claim and run jobs until ``stop()`` (or ``max_jobs`` claims); returns what happened to them.
        Ctrl-C (``KeyboardInterrupt``, outside ``handle_signals``; or ``SystemExit``, or any other
        ``BaseException`` not an ``Exception``) puts the job in hand back, then is raised (held by a claim's
        or a fail's write, so that neither is cut off: ``CtrlC``)."""
        steps = self.plan(max_jobs)
        with CtrlC.during_run() as self._ctrl_c:
            try:
                step = next(steps)
                while True:
                    if isinstance(step, Claim):  # the job before is over: a Ctrl-C now has none to put back
                        self._in_hand = None
                    try:
                        value = self._answer(step)
                    except Exception as exc:
                        step = steps.throw(exc)
                    except asyncio.CancelledError as exc:  # from the handler (asyncio.run in it): its error
                        if not isinstance(step, Handle):
                            raise
                        step = steps.throw(exc)
                    else:
                        step = steps.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            except Exception:  # the loop's own end (the plan raised it): the job in hand is not put back
                raise
            except BaseException as exc:  # Ctrl-C, sys.exit() or another BaseException (GeneratorExit...)
                if self._in_hand is not None:  # claimed, not yet over: back in the queue
                    with self._ctrl_c.held():
                        put_back(self.store, self._in_hand, self.worker_id, exc)
                raise

    def _answer(self, step: WorkerStep) -> Any:
        if isinstance(step, Claim):
            return self._claim(step)
        if isinstance(step, Handle):
            return self._run_handler(Job(step.generation, self))
        if isinstance(step, Pause):
            return self._stop.wait(step.seconds)
        with self._ctrl_c.held():
            return self.store.fail(step.generation_id, step.message, **step.options)

    def _claim(self, step: Claim) -> Generation | None:
        store, worker_id, options = self.store, step.worker_id, step.options
        waiting.outside_transaction(store, "Worker.run")
        steps = waiting.until(waiting.claimed, self._stop.is_set, most=WAIT_SLICE_SECONDS)

        def claim() -> Generation | None:
            with self._ctrl_c.held():  # a Ctrl-C as it commits: raised once the job is known, to put back
                self._in_hand = store.claim_next(worker_id, **options)
            return self._in_hand

        return waiting.wait(store, waiting.claiming(options), steps, claim)


class AsyncWorker(_Loop):
    """``Worker`` for asyncio: claims and runs jobs one at a time with ``await handler(job)`` on an
    ``AsyncStore``, the same plan answered with awaited calls. Run several (one per worker id) with
    ``asyncio.gather`` for jobs at once. A task cancelled while it waits for a job or runs one ends with
    ``CancelledError`` and writes nothing more (even if its handler swallowed the cancel, or raised another
    error for it): a job in hand stays processing until its lease expires (one its claim took as the cancel
    came is put back: ``checks._uncut``), unless a Ctrl-C cancelled it: put back, as ``Worker``'s. A
    ``CancelledError`` of the handler's own (an await another task cancelled; this task was not) is the
    handler's error: the job is failed, the loop goes on."""

    def __init__(
        self,
        store: AsyncStore,
        worker_id: str,
        handler: Callable[[AsyncJob], Awaitable[Any]],
        *,
        lease_seconds: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        claim_options: dict[str, Any] | None = None,
        backoff: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            worker_id,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            claim_options=claim_options,
            backoff=backoff,
        )
        _store_fits(store, awaited=True)
        _yielding(handler)
        self.store, self._seen = store, _sees_writes(store)
        self.handler = handler

    async def run(self, *, max_jobs: int | None = None) -> WorkerReport:
        """``Worker.run``, awaited: a ``BaseException`` neither an ``Exception`` nor a ``CancelledError`` (a
        handler's ``sys.exit()``, ``KeyboardInterrupt``) puts the job in hand back, then is raised; so does
        the task's cancel by a Ctrl-C (``asyncio.run``'s SIGINT handler: ``ctrl_c.sigint_noted``)."""
        steps, in_hand = self.plan(max_jobs), None
        with sigint_noted() as ctrl_c:
            try:
                step = next(steps)
                while True:
                    claiming = isinstance(step, Claim)
                    in_hand = None if claiming else in_hand  # the job before is over: none to put back
                    try:
                        value = await self._answer(step)
                        in_hand = value if claiming else in_hand  # until the next claim
                    except Exception as exc:
                        step = steps.throw(exc)
                    except asyncio.CancelledError as exc:
                        if not isinstance(step, Handle) or _task_cancelled():  # the worker's task: it ends
                            if in_hand is not None and ctrl_c():  # cancelled by a Ctrl-C: its job goes back
                                await put_back_interrupted(self.store, in_hand, self.worker_id)
                            raise
                        step = steps.throw(exc)  # the handler's own await was cancelled: its error
                    except BaseException as exc:  # sys.exit(), KeyboardInterrupt...: the job in hand back
                        if in_hand is not None:
                            await put_back_async(self.store, in_hand, self.worker_id, exc)
                        raise
                    else:
                        step = steps.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _answer(self, step: WorkerStep) -> Any:
        if isinstance(step, Claim):
            return await self._claim(step)
        if isinstance(step, Handle):
            return await _unswallowed(self._run_handler(AsyncJob(step.generation, self)))
        if isinstance(step, Pause):
            return await self._pause(step.seconds)
        return await self.store.fail(step.generation_id, step.message, **step.options)

    async def _pause(self, seconds: float) -> bool:
        """``Worker``'s ``self._stop.wait(seconds)``, awaited: sleep ``seconds`` or until ``stop()`` (from a
        signal handler, another thread or a task), whichever is first; whether it was stopped."""
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()

        def wake() -> None:
            with suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(stopped.set)

        self._wakers.add(wake)
        try:
            if not self.stopping:  # a stop before the waker was added: seen here, not slept through
                with suppress(TimeoutError):
                    await asyncio.wait_for(stopped.wait(), seconds)
        finally:
            self._wakers.discard(wake)
        return self.stopping

    async def _claim(self, step: Claim) -> Generation | None:
        store, worker_id, options = self.store, step.worker_id, step.options
        waiting.outside_transaction(store, "AsyncWorker.run")
        steps = waiting.until(waiting.claimed, self._stop.is_set, most=WAIT_SLICE_SECONDS)
        claim = lambda: _uncut(store.claim_next(worker_id, **options), store, worker_id)  # noqa: E731
        return await waiting.wait_async(store, waiting.claiming(options), steps, claim)


# fmt: off
__all__ = [
    "MAX_ERROR_CHARS", "WAIT_SLICE_SECONDS", "AsyncJob", "AsyncWorker", "Claim", "Fail",
    "Handle", "Job", "Pause", "Plan", "Worker", "WorkerReport", "WorkerStep", "failure",
]
# fmt: on

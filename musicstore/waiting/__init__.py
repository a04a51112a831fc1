"""Waiting for work and for results without polling the queue: ``claim_next(wait=...)`` and ``wait_for``.

A wait is a plan (``plan``): try the operation; if it found nothing, sleep until woken or ``RECHECK_SECONDS``,
whichever is first, and try again, until the deadline (a worker's, ``until``: until it claims or is stopped).
The try is the truth (the claim query, a read of the row), so a missed or spurious wake-up only delays or
repeats a try, never loses a job. What wakes a sleeper:

- PostgreSQL: NOTIFY sent by the triggers of migration 0009 in the transaction that enqueues or finishes a job
  (0023: or deletes one not finished), received by the store's hub (``_Hub``): one connection per store and
  process that LISTENs on both channels (``PENDING``, ``FINISHED``) and that a daemon thread reads
  continuously, fanning each notification out to the waits registered for it (``Wake``: a thread's
  ``threading.Event``, or an event loop's ``asyncio.Event`` set through ``call_soon_threadsafe``; of the
  claim waits, one of each herd: ``herds``). However
  many waits a store has at once (an API server's ``wait_for`` in each request), they share that one server
  connection. A wait registers before its first try and clears its flag before each try, so a notification
  sent between a try and the sleep is not lost: it sets the flag and the sleep returns at once. The hub's
  first connection is made by the first wait (its errors are that wait's), with the store's connect timeout
  (``_Hub.connect_timeout``); a lost connection (or one silent ``KEEPALIVE_SECONDS`` that then leaves an empty
  query unanswered ``ANSWER_SECONDS``) is made again in the background (at once, then every
  ``RECONNECT_SECONDS`` until it succeeds), and every registered wait is woken when the hub listens again,
  to try once more (the notifications of the gap are lost; the waits re-try at least every
  ``RECHECK_SECONDS`` meanwhile). A try
  that fails because the pooled connection it ran on was lost (``connection_lost``: the server ended the
  store's connections while the wait slept) is made once more at once, on a live connection (the pool has
  dropped the dead one and checked its idle ones); a second loss is raised. Being read continuously, the hub's
  connection never fills its socket: a listener left unread would block its server process, which holds back
  the server's notification queue for every session (it grows until NOTIFY, and so every enqueue, fails).
- SQLite: ``PRAGMA data_version``, which changes when any other connection commits (to anything, so a busy
  database wakes sleepers for nothing more often: each then repeats one try), read by the store's poller
  (``_Poller``): one connection per store and process, polled by a daemon thread every
  ``SQLITE_POLL_SECONDS`` while any wait is registered (none while none is), waking the registered waits (of
  the claim waits, one of each herd: ``herds``) when it changed. However many waits a store has at once,
  they share that connection and that one poll (before, each wait polled a connection of its own: a
  thousand concurrent ``wait_for`` held a thousand files open).
  The first wait makes the connection (its errors are that wait's); a read that fails wakes every wait (each
  tries again, and meets the database's error if it is one) and the connection is made again every
  ``RECONNECT_SECONDS`` in the background.

Claim waits (``claiming``) come in herds (``herds``): a notification wakes one wait of a herd, which hands
the wake-up on if it ends without a try, and a try that claimed a job wakes the next; so an enqueue costs
about two tries however many wait, not one per wait (before, N waiting ``claim_next`` made N claims per
enqueue, and an ``AsyncStore``'s enqueue queued for a pooled connection behind them).
``wait`` (blocking) and ``wait_async`` (awaited) drive the same plan through the same store's ``listeners``.
Closing the store closes the hub (its connection and thread) and wakes every wait in progress: each tries
once more and then sleeps without wake-ups (at most ``RECHECK_SECONDS`` at a time) until it ends; a new
wait on the closed store is refused. A forked child never uses its parent's hub: its first wait makes one
of its own. A wait that ends in any way (its result, an error, an async wait's cancellation) leaves nothing
registered; an awaited wait whose event loop was closed without cancelling it (not ``asyncio.run``) is
unregistered the next time its hub wakes it (SQLite: at the next commit of another connection).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .. import validate
from ..errors import DatabaseBusy, DatabaseError, InvalidInput
from ..models import Generation
from ..ops import claim_next
from .hub import RECONNECT_SECONDS, _Hub
from .listeners import Listeners, close, close_async, listeners
from .poller import SQLITE_POLL_SECONDS, _Poller
from .waiters import _TaskWaiter, _ThreadWaiter
from .wakes import FINISHED, PENDING, WORK, Wake, awaited, claiming, finished

T = TypeVar("T")

RECHECK_SECONDS = 1.0
"""The longest sleep between two tries without a wake-up: jobs that become due by time alone (a not-before
time) and a lost connection's notifications are found at least this often."""

WAIT_FOR_SECONDS = validate.MAX_SECONDS
"""``wait_for``'s ``timeout`` when none is given: the longest wait accepted (30 days), so that
``wait_for(generation_id)`` waits until the generation is finished."""


class _Try:
    __slots__ = ()


TRY = _Try()
"""Run the operation once more (the plan receives its result)."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep until woken, at most ``seconds``."""

    seconds: float


Plan = Generator[_Try | Sleep, Any, T]


def seconds(value: object, what: str) -> float:
    """A wait: a finite number of seconds, zero (one try) to ``validate.MAX_SECONDS``."""
    return validate.seconds(value, what, positive=False)


def plan(
    timeout: float, done: Callable[[T], bool], *, clock: Callable[[], float] = time.monotonic
) -> Plan[T]:
    """Try, and while the result is not ``done`` and ``timeout`` seconds have not passed, sleep and try again;
    returns the last result."""
    deadline = clock() + timeout
    while True:
        result: T = yield TRY
        left = deadline - clock()
        if done(result) or left <= 0:
            return result
        yield Sleep(min(left, RECHECK_SECONDS))


def until(
    done: Callable[[T], bool], stopped: Callable[[], bool], *, most: float = RECHECK_SECONDS
) -> Plan[T]:
    """Try, and while the result is not ``done`` and ``stopped()`` is false, sleep (until woken, at most
    ``most`` seconds and ``RECHECK_SECONDS``) and try again; returns the last result, without a try once
    stopped. A worker's wait: one try per sleep however long it is idle (``plan`` in slices would end each
    with a try and begin the next with another), and none after it was stopped."""
    while True:
        result: T = yield TRY
        if done(result) or stopped():
            return result
        yield Sleep(min(most, RECHECK_SECONDS))
        if stopped():
            return result


def outside_transaction(store: Any, what: str) -> None:
    """Refuse to wait inside a transaction the calling thread (``Store``) or task (``AsyncStore``) opened on
    ``store``: it would stay open, and its locks held, for the whole wait."""
    joined = getattr(store, "_joined", None)  # AsyncStore's; Store keeps its thread's in _local
    tx = joined() if joined is not None else getattr(getattr(store, "_local", None), "tx", None)
    if tx is not None:
        raise _inside(what)


def _inside(what: str) -> InvalidInput:
    return InvalidInput(f"{what} cannot wait inside a transaction; call it outside one")


def refuse_wait(wait: float | None) -> None:
    """A transaction's ``claim_next`` takes the store's ``wait`` only to refuse it, as the store does inside a
    transaction (InvalidInput: it would stay open for the whole wait); None, the default, is no wait."""
    if wait is not None:
        seconds(wait, "wait")
        raise _inside("claim_next(wait=...)")


class _Runs(Protocol):
    def run(self, op: Any, /, *args: Any, **kwargs: Any) -> Any: ...


class TransactionClaim:
    """``Transaction.claim_next``: the store's signature, the claim in the transaction, ``wait`` refused."""

    def claim_next(
        self: _Runs, worker_id: str, *, wait: float | None = None, **options: Any
    ) -> Generation | None:
        """``ops.claim_next`` in this transaction (``options``: its keyword arguments); no ``wait``."""
        refuse_wait(wait)
        result: Generation | None = self.run(claim_next, worker_id, **options)
        return result


class AsyncTransactionClaim:
    """``AsyncTransaction.claim_next``: as ``TransactionClaim``, awaited."""

    async def claim_next(
        self: _Runs, worker_id: str, *, wait: float | None = None, **options: Any
    ) -> Generation | None:
        """``ops.claim_next`` in this transaction (``options``: its keyword arguments); no ``wait``."""
        refuse_wait(wait)
        result: Generation | None = await self.run(claim_next, worker_id, **options)
        return result


def _sleep(listener: _ThreadWaiter, wake: Wake, seconds: float) -> None:
    """One sleep of a blocking wait (``wake`` is the listener's own: a hub's waiter is woken only by it)."""
    listener.sleep(seconds)


async def _sleep_async(listener: _TaskWaiter, wake: Wake, seconds: float) -> None:
    """``_sleep`` for an awaited wait."""
    await listener.sleep(seconds)


_LOST_STATES = ("08", "57P")
"""SQLSTATE classes of a connection the server ended or lost: connection exception, operator intervention
(an administrator's or idle_session_timeout's termination, a shutdown)."""


def connection_lost(exc: DatabaseError) -> bool:
    """Whether ``exc`` (a try's error) says the PostgreSQL connection it ran on had been lost, not that the
    database refused the try: its cause a psycopg ``OperationalError`` with no SQLSTATE (the socket closed)
    or one of ``_LOST_STATES``; never ``DatabaseBusy`` (the busy timeout waited out, for a pooled connection:
    psycopg_pool's ``PoolTimeout`` is an ``OperationalError`` too; or for a row lock)."""
    cause = exc.__cause__
    if isinstance(exc, DatabaseBusy) or cause is None or not type(cause).__module__.startswith("psycopg"):
        return False
    import psycopg

    state = getattr(cause, "sqlstate", None)
    return isinstance(cause, psycopg.OperationalError) and (state is None or state.startswith(_LOST_STATES))


def wait(store: Any, wake: Wake, steps: Plan[T], attempt: Callable[[], T]) -> T:
    """Drive ``steps`` with blocking calls: ``attempt`` for each try, a listener of ``store`` for a sleep."""
    pool = listeners(store)
    with store._translating:
        listener = pool.acquire(wake)
    try:
        step = next(steps)
        while True:
            if step is TRY:
                with store._translating:
                    pool.arm(listener)
                try:
                    value: Any = attempt()
                except DatabaseError as exc:
                    if not connection_lost(exc):
                        raise
                    value = attempt()  # once more, on a live connection: a second loss is raised
            else:
                assert isinstance(step, Sleep)
                with store._translating:
                    _sleep(listener, wake, step.seconds)
                value = None
            step = steps.send(value)
    except StopIteration as done:
        pool.release(listener, took=done.value is not None)
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        pool.discard(listener)  # perhaps broken (SQLite): never lent again
        raise


async def wait_async(store: Any, wake: Wake, steps: Plan[T], attempt: Callable[[], Awaitable[T]]) -> T:
    """``wait`` with awaited calls (its release and discard do not await: a cancelled wait leaves nothing
    registered)."""
    pool = listeners(store)
    with store._translating:
        listener = await pool.acquire_async(wake)
    try:
        step = next(steps)
        while True:
            if step is TRY:
                with store._translating:
                    pool.arm(listener)
                try:
                    value: Any = await attempt()
                except DatabaseError as exc:
                    if not connection_lost(exc):
                        raise
                    value = await attempt()  # as in ``wait``
            else:
                assert isinstance(step, Sleep)
                with store._translating:
                    await _sleep_async(listener, wake, step.seconds)
                value = None
            step = steps.send(value)
    except StopIteration as done:
        pool.release(listener, took=done.value is not None)
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        pool.discard(listener)
        raise


def claimed(found: Generation | None) -> bool:
    """A claim's result is done when it took a job."""
    return found is not None


def is_finished(found: Generation) -> bool:
    """A read generation is done when it is completed, failed or cancelled."""
    return found.is_finished


__all__ = [
    "FINISHED",
    "PENDING",
    "RECHECK_SECONDS",
    "RECONNECT_SECONDS",
    "SQLITE_POLL_SECONDS",
    "WAIT_FOR_SECONDS",
    "WORK",
    "AsyncTransactionClaim",
    "Listeners",
    "Plan",
    "Sleep",
    "TransactionClaim",
    "Wake",
    "_Hub",
    "_Poller",
    "_ThreadWaiter",
    "awaited",
    "claimed",
    "claiming",
    "close",
    "close_async",
    "connection_lost",
    "finished",
    "is_finished",
    "listeners",
    "outside_transaction",
    "plan",
    "refuse_wait",
    "seconds",
    "until",
    "wait",
    "wait_async",
]

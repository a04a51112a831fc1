"""Waiting for work and for results without polling the queue: ``claim_next(wait=...)`` and ``wait_for``.

A wait is a plan (``plan``): try the operation; if it found nothing, sleep until woken or ``RECHECK_SECONDS``,
whichever is first, and try again, until the deadline (a worker's, ``until``: until it claims or is stopped).
The try is the truth (the claim query, a read of the row), so a missed or spurious wake-up only delays or
repeats a try, never loses a job. What wakes a sleeper:

- PostgreSQL: LISTEN on a connection of its own (``PENDING``, ``FINISHED``), NOTIFY sent by the triggers of
  migration 0009 in the transaction that enqueues or finishes a job; the listener is armed before the first
  try, so a notification sent between a try and the sleep is already waiting on the connection.
- SQLite: ``PRAGMA data_version`` on a connection of its own, read before each try and polled every
  ``SQLITE_POLL_SECONDS`` while sleeping; it changes when any other connection commits (to anything, so a
  busy database wakes sleepers for nothing more often: each then repeats one try).

``wait`` (blocking) and ``wait_async`` (awaited) drive the same plan with the same listeners; each store keeps
up to ``MAX_IDLE_LISTENERS`` idle listeners for the next waits (``listeners``) and closes them with the
store. An idle PostgreSQL listener listens to nothing (``UNLISTEN *`` as it comes back, ``LISTEN`` again
as it is lent): one that went on listening while nobody read it would fill its socket, then block its server
process, which holds back the server's notification queue for every session (it grows until NOTIFY, and so
every enqueue, fails).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import aclosing, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import validate
from .errors import InvalidInput
from .models import Generation

T = TypeVar("T")

PENDING = "musicstore_pending"
"""The channel a job becoming pending is notified on (PostgreSQL)."""
FINISHED = "musicstore_finished"
"""The channel a job becoming completed, failed or cancelled is notified on, with its id (PostgreSQL)."""
SQLITE_POLL_SECONDS = 0.005
"""How often a sleeper reads ``PRAGMA data_version`` on SQLite (the wake-up's added latency is up to this)."""
RECHECK_SECONDS = 1.0
"""The longest sleep between two tries without a wake-up: jobs that become due by time alone (a not-before
time) and a lost connection's notifications are found at least this often."""
MAX_LISTENERS = 16
"""How many PostgreSQL listeners (a server connection each, besides the store's pool) a store lends at once.
A wait that finds them all lent sleeps without one (``_Polling``): it tries again every ``RECHECK_SECONDS``
instead of at a notification, so that a burst of waits (an API server's ``wait_for`` in each of its requests)
cannot take the server's every connection slot (``too many clients`` for every client of the database)."""
MAX_IDLE_LISTENERS = 4
"""How many listeners (a connection each) a store keeps for its next waits once their waits end; a burst of
more concurrent waits closes the rest as they end (before, every one stayed open until the store closed)."""

WAIT_FOR_SECONDS = validate.MAX_SECONDS
"""``wait_for``'s ``timeout`` when none is given: the longest wait accepted (30 days), so that
``wait_for(generation_id)`` waits until the generation is finished."""


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
        raise InvalidInput(f"{what} cannot wait inside a transaction; call it outside one")


class _SQLiteListener:
    """``PRAGMA data_version`` on a connection of its own."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.seen = -1

    def version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def arm(self) -> None:
        self.seen = self.version()

    def polls(self, seconds: float) -> Iterator[float]:
        """The pauses of one sleep, until another connection committed or ``seconds`` passed."""
        deadline = time.monotonic() + seconds
        while self.version() == self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield min(SQLITE_POLL_SECONDS, left)

    def close(self) -> None:
        self.conn.close()


class _PostgresListener:
    """A connection of its own that LISTENs on both channels (sync or async psycopg)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def arm(self) -> None:
        """Nothing to do: notifications wait on the connection until read."""


def _listen_sql() -> str:
    return f"LISTEN {PENDING}; LISTEN {FINISHED}"


UNLISTEN = "UNLISTEN *"
"""What an idle PostgreSQL listener runs as it comes back: it listens to nothing until lent again."""


class _Polling:
    """What a wait sleeps with when the store's PostgreSQL listeners are all lent (``MAX_LISTENERS``): no
    connection, no wake-up; the sleep lasts its whole length (at most ``RECHECK_SECONDS``)."""

    class _NoConnection:
        def close(self) -> None:
            """Nothing to close."""

    conn = _NoConnection()

    def arm(self) -> None:
        """Nothing to do: nothing wakes it."""


POLLING = _Polling()


class Listeners:
    """A store's idle listeners, lent one per wait (any thread); closed with the store."""

    def __init__(self, url: Any) -> None:
        self.url = url
        self.closed = False
        self._idle: list[Any] = []
        self._lent = 0  # PostgreSQL listeners lent out now
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self) -> Any | None:
        """An idle listener, None (make one), or ``POLLING`` when ``MAX_LISTENERS`` are lent (PostgreSQL)."""
        with self._lock:
            if self.closed:
                raise InvalidInput("the store is closed; open a new one to wait")
            if self._pid != os.getpid():  # a forked child: the parent's connections are not its own
                self._idle, self._lent, self._pid = [], 0, os.getpid()
            if self.url.dialect == "postgres":
                if self._lent >= MAX_LISTENERS:
                    return POLLING
                self._lent += 1
            return self._idle.pop() if self._idle else None

    def _returned(self, listener: Any) -> None:
        """A lent PostgreSQL listener is back (kept or closed)."""
        if isinstance(listener, _PostgresListener):
            with self._lock:
                if self._pid == os.getpid() and self._lent > 0:
                    self._lent -= 1

    def _keep(self, listener: Any) -> bool:
        self._returned(listener)
        with self._lock:
            if self.closed or self._pid != os.getpid() or len(self._idle) >= MAX_IDLE_LISTENERS:
                return False
            self._idle.append(listener)
            return True

    def _lent_one(self) -> None:
        """Undo ``_take``'s count when no listener could be made."""
        if self.url.dialect == "postgres":
            with self._lock:
                if self._pid == os.getpid() and self._lent > 0:
                    self._lent -= 1

    def discard(self, listener: Any) -> None:
        """A lent listener that may be broken: closed, never lent again."""
        self._returned(listener)
        listener.conn.close()

    async def discard_async(self, listener: Any) -> None:
        """``discard`` for an async listener."""
        self._returned(listener)
        await _close_async(listener)

    def _drain(self) -> list[Any]:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            return idle

    def acquire(self) -> Any:
        listener = self._take()
        if listener is None:
            if self.url.dialect != "postgres":
                assert self.url.path is not None
                return _SQLiteListener(self.url.path)
            import psycopg

            try:
                listener = _PostgresListener(psycopg.connect(self.url.url, autocommit=True))
            except BaseException:
                self._lent_one()
                raise
        if isinstance(listener, _PostgresListener):  # an idle one or a new one: LISTEN, else closed
            try:
                listener.conn.execute(_listen_sql())
            except BaseException:
                self.discard(listener)  # perhaps broken (a lost connection): never lent again
                raise
        return listener

    def release(self, listener: Any) -> None:
        if listener is POLLING:
            return
        if isinstance(listener, _PostgresListener):
            try:
                listener.conn.execute(UNLISTEN)
            except BaseException as exc:
                self.discard(listener)  # never lent again; the wait's result stands
                if isinstance(exc, Exception):
                    return
                raise
        if not self._keep(listener):
            listener.conn.close()

    def close(self) -> None:
        for listener in self._drain():
            listener.conn.close()

    async def acquire_async(self) -> Any:
        listener = self._take()
        if listener is None:
            if self.url.dialect != "postgres":
                assert self.url.path is not None
                return _SQLiteListener(self.url.path)
            import psycopg

            try:
                connection = await psycopg.AsyncConnection.connect(self.url.url, autocommit=True)
            except BaseException:
                self._lent_one()
                raise
            listener = _PostgresListener(connection)
        if isinstance(listener, _PostgresListener):  # an idle one or a new one (a cancelled LISTEN too)
            try:
                await listener.conn.execute(_listen_sql())
            except BaseException:
                await asyncio.shield(self.discard_async(listener))
                raise
        return listener

    async def release_async(self, listener: Any) -> None:
        if listener is POLLING:
            return
        if isinstance(listener, _PostgresListener):
            try:
                await listener.conn.execute(UNLISTEN)
            except BaseException as exc:
                await asyncio.shield(self.discard_async(listener))  # never lent again; the result stands
                if isinstance(exc, Exception):
                    return
                raise
        if not self._keep(listener):
            await _close_async(listener)

    async def close_async(self) -> None:
        for listener in self._drain():
            await _close_async(listener)


async def _close_async(listener: Any) -> None:
    closing = listener.conn.close()
    if isinstance(closing, Awaitable):
        await closing


def listeners(store: Any) -> Listeners:
    """The store's listeners, made on its first wait."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", Listeners(store.url))
    return found


def close(store: Any) -> None:
    """Close the store's idle listeners (one lent out is closed when it comes back)."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is not None:
        found.close()


async def close_async(store: Any) -> None:
    """``close`` for an ``AsyncStore``."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is not None:
        await found.close_async()


def _sleep(listener: Any, wake: Wake, seconds: float) -> None:
    if listener is POLLING:
        time.sleep(seconds)
        return
    if isinstance(listener, _SQLiteListener):
        for pause in listener.polls(seconds):
            time.sleep(pause)
        return
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with closing(listener.conn.notifies(timeout=left, stop_after=1)) as notes:
            for note in notes:
                if wake.matches(note.channel, note.payload):
                    return


async def _sleep_async(listener: Any, wake: Wake, seconds: float) -> None:
    if listener is POLLING:
        await asyncio.sleep(seconds)
        return
    if isinstance(listener, _SQLiteListener):
        for pause in listener.polls(seconds):
            await asyncio.sleep(pause)
        return
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        # closed here, not later by the event loop's finalizer: until then the generator holds the
        # connection's lock and keeps its backlog of notifications switched off
        async with aclosing(listener.conn.notifies(timeout=left, stop_after=1)) as notes:
            async for note in notes:
                if wake.matches(note.channel, note.payload):
                    return


def wait(store: Any, wake: Wake, steps: Plan[T], attempt: Callable[[], T]) -> T:
    """Drive ``steps`` with blocking calls: ``attempt`` for each try, a listener of ``store`` for a sleep."""
    pool = listeners(store)
    with store._translating:
        listener = pool.acquire()
    try:
        step = next(steps)
        while True:
            if step is TRY:
                with store._translating:
                    listener.arm()
                value: Any = attempt()
            else:
                assert isinstance(step, Sleep)
                with store._translating:
                    _sleep(listener, wake, step.seconds)
                value = None
            step = steps.send(value)
    except StopIteration as done:
        pool.release(listener)
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        pool.discard(listener)  # perhaps broken (a lost connection): never lent again
        raise


async def wait_async(store: Any, wake: Wake, steps: Plan[T], attempt: Callable[[], Awaitable[T]]) -> T:
    """``wait`` with awaited calls."""
    pool = listeners(store)
    with store._translating:
        listener = await pool.acquire_async()
    try:
        step = next(steps)
        while True:
            if step is TRY:
                with store._translating:
                    listener.arm()
                value: Any = await attempt()
            else:
                assert isinstance(step, Sleep)
                with store._translating:
                    await _sleep_async(listener, wake, step.seconds)
                value = None
            step = steps.send(value)
    except StopIteration as done:
        await pool.release_async(listener)
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        await asyncio.shield(pool.discard_async(listener))  # perhaps broken: never lent again
        raise


def claimed(found: Generation | None) -> bool:
    """A claim's result is done when it took a job."""
    return found is not None


def is_finished(found: Generation) -> bool:
    """A read generation is done when it is completed, failed or cancelled."""
    return found.is_finished


__all__ = [
    "FINISHED",
    "MAX_IDLE_LISTENERS",
    "MAX_LISTENERS",
    "PENDING",
    "RECHECK_SECONDS",
    "SQLITE_POLL_SECONDS",
    "WAIT_FOR_SECONDS",
    "WORK",
    "Listeners",
    "Plan",
    "Sleep",
    "Wake",
    "claimed",
    "close",
    "close_async",
    "finished",
    "is_finished",
    "listeners",
    "outside_transaction",
    "plan",
    "seconds",
    "until",
    "wait",
    "wait_async",
]

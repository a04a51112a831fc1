"""Waiting for work and for results without polling the queue: ``claim_next(wait=...)`` and ``wait_for``.

A wait is a plan (``plan``): try the operation; if it found nothing, sleep until woken or ``RECHECK_SECONDS``,
whichever is first, and try again, until the deadline (a worker's, ``until``: until it claims or is stopped).
The try is the truth (the claim query, a read of the row), so a missed or spurious wake-up only delays or
repeats a try, never loses a job. What wakes a sleeper:

- PostgreSQL: NOTIFY sent by the triggers of migration 0009 in the transaction that enqueues or finishes a
  job, received by the store's hub (``_Hub``): one connection per store and process that LISTENs on both
  channels (``PENDING``, ``FINISHED``) and that a daemon thread reads continuously, fanning each
  notification out to the waits registered for it (``Wake``: a thread's ``threading.Event``, or an event
  loop's ``asyncio.Event`` set through ``call_soon_threadsafe``). However many waits a store has at once
  (an API server's ``wait_for`` in each request), they share that one server connection. A wait registers
  before its first try and clears its flag before each try, so a notification sent between a try and the
  sleep is not lost: it sets the flag and the sleep returns at once. The hub's first connection is made
  by the first wait (its errors are that wait's); a lost connection is made again in the background
  (every ``RECONNECT_SECONDS`` until it succeeds), and every registered wait is woken when the hub listens
  again, to try once more (the notifications of the gap are lost; the waits re-try at least every
  ``RECHECK_SECONDS`` meanwhile). A try that fails because the pooled connection it ran on was lost
  (``connection_lost``: the server ended the store's connections while the wait slept) is made once more
  at once, on a live connection (the pool has dropped the dead one and checked its idle ones); a second
  loss is raised. Being read continuously, the hub's connection never fills its socket:
  a listener left unread would block its server process, which holds back the server's notification
  queue for every session (it grows until NOTIFY, and so every enqueue, fails).
- SQLite: ``PRAGMA data_version`` on a connection of its own, read before each try and polled every
  ``SQLITE_POLL_SECONDS`` while sleeping; it changes when any other connection commits (to anything, so a
  busy database wakes sleepers for nothing more often: each then repeats one try). Each store keeps up to
  ``MAX_IDLE_LISTENERS`` of these connections for its next waits.

``wait`` (blocking) and ``wait_async`` (awaited) drive the same plan through the same store's ``listeners``.
Closing the store closes the hub (its connection and thread) and wakes every wait in progress: each tries
once more and then sleeps without wake-ups (at most ``RECHECK_SECONDS`` at a time) until it ends; a new
wait on the closed store is refused. A forked child never uses its parent's hub: its first wait makes one
of its own. A wait that ends in any way (its result, an error, an async wait's cancellation) leaves nothing
registered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import selectors
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import validate
from .errors import DatabaseBusy, DatabaseError, InvalidInput
from .masking import redact
from .models import Generation

T = TypeVar("T")
log = logging.getLogger(__name__)

PENDING = "musicstore_pending"
"""The channel a job becoming pending is notified on (PostgreSQL)."""
FINISHED = "musicstore_finished"
"""The channel a job becoming completed, failed or cancelled is notified on, with its id (PostgreSQL)."""
SQLITE_POLL_SECONDS = 0.005
"""How often a sleeper reads ``PRAGMA data_version`` on SQLite (the wake-up's added latency is up to this)."""
RECHECK_SECONDS = 1.0
"""The longest sleep between two tries without a wake-up: jobs that become due by time alone (a not-before
time) and a lost connection's notifications are found at least this often."""
RECONNECT_SECONDS = 1.0
"""How long the PostgreSQL hub pauses between two attempts to make its lost connection again (the first is
at once, unless the lost connection had lasted less than this)."""
MAX_IDLE_LISTENERS = 4
"""How many SQLite listeners (a connection each) a store keeps for its next waits once their waits end; a
burst of more concurrent waits closes the rest as they end. (PostgreSQL waits share the store's hub: one
connection however many waits.)"""

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


class _Waiter:
    """One PostgreSQL wait's registration with its store's hub: the hub calls ``notify`` (from its thread)
    for each notification that matches ``wake``; ``arm`` (before each try) forgets the earlier ones."""

    __slots__ = ("wake",)

    def __init__(self, wake: Wake) -> None:
        self.wake = wake

    def arm(self) -> None:
        raise NotImplementedError

    def notify(self) -> None:
        raise NotImplementedError


class _ThreadWaiter(_Waiter):
    """A blocking wait's: a ``threading.Event``."""

    __slots__ = ("_event",)

    def __init__(self, wake: Wake) -> None:
        super().__init__(wake)
        self._event = threading.Event()

    def arm(self) -> None:
        self._event.clear()

    def notify(self) -> None:
        self._event.set()

    def sleep(self, seconds: float) -> bool:
        """Until notified since the last ``arm``, at most ``seconds``; whether it was."""
        return self._event.wait(seconds)


class _TaskWaiter(_Waiter):
    """An awaited wait's: an ``asyncio.Event`` of its event loop, set through ``call_soon_threadsafe``."""

    __slots__ = ("_event", "_loop")

    def __init__(self, wake: Wake, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(wake)
        self._loop = loop
        self._event = asyncio.Event()

    def arm(self) -> None:
        self._event.clear()  # on the loop: a notification set for before it runs later, a spurious wake-up

    def notify(self) -> None:
        with suppress(RuntimeError):  # its loop is closed: nobody sleeps on it any more
            self._loop.call_soon_threadsafe(self._event.set)

    async def sleep(self, seconds: float) -> bool:
        """Until notified since the last ``arm``, at most ``seconds``; whether it was."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


def _listen_sql() -> str:
    return f"LISTEN {PENDING}; LISTEN {FINISHED}"


def _closed_store() -> InvalidInput:
    return InvalidInput("the store is closed; open a new one to wait")


class _Hub:
    """A store's one PostgreSQL listening connection (per process), shared by all its waits: a daemon thread
    reads it continuously and wakes the registered waits a notification matches."""

    def __init__(self, url: Any) -> None:
        self.url = url
        self.connections = 0
        """Connections made so far (the first, then one per reconnection)."""
        self._lock = threading.Lock()
        self._starting = threading.Lock()
        self._closed = False
        self._any: set[_Waiter] = set()  # waits for any payload (WORK)
        self._by_payload: dict[str, set[_Waiter]] = {}  # waits for one job's notification (finished)
        self._thread: threading.Thread | None = None
        self._wakeup: socket.socket | None = None  # the end of the pair that ends the thread's wait at close
        self._pid = os.getpid()

    def _own(self) -> None:
        """Under the lock: a forked child forgets its parent's thread, connection and waits (the connection
        is dropped, not closed: psycopg does not end a connection in a process that did not open it)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._any, self._by_payload, self._thread, self._wakeup = set(), {}, None, None

    @property
    def started(self) -> bool:
        with self._lock:
            self._own()
            return self._thread is not None and self._thread.is_alive()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.url.url, autocommit=True)
        try:
            conn.execute(_listen_sql())
        except BaseException:
            conn.close()
            raise
        self.connections += 1
        return conn

    def start(self) -> None:
        """Listen, unless the hub does already: the first wait of this process makes the connection (its
        errors are that wait's) and starts the thread."""
        with self._starting:
            with self._lock:
                self._own()
                if self._closed:
                    raise _closed_store()
                if self._thread is not None and self._thread.is_alive():
                    return
            conn = self._connect()
            with self._lock:
                if self._closed:
                    conn.close()
                    raise _closed_store()
                self._wakeup, read = socket.socketpair()
                thread = threading.Thread(
                    target=self._run, args=(conn, read), name="musicstore-listen", daemon=True
                )
                self._thread = thread
            thread.start()

    def register(self, waiter: _Waiter) -> bool:
        """Wake ``waiter`` at the notifications that match it from now on; False (nothing registered) when
        the hub is not started in this process (or its thread ended)."""
        with self._lock:
            self._own()
            if self._closed:
                raise _closed_store()
            if self._thread is None or not self._thread.is_alive():
                return False
            payload = waiter.wake.payload
            if payload is None:
                self._any.add(waiter)
            else:
                self._by_payload.setdefault(payload, set()).add(waiter)
            return True

    def unregister(self, waiter: _Waiter) -> None:
        with self._lock:
            payload = waiter.wake.payload
            if payload is None:
                self._any.discard(waiter)
            elif (same := self._by_payload.get(payload)) is not None:
                same.discard(waiter)
                if not same:
                    del self._by_payload[payload]

    @property
    def waiters(self) -> int:
        """How many waits are registered."""
        with self._lock:
            return len(self._any) + sum(len(same) for same in self._by_payload.values())

    def _everyone(self) -> list[_Waiter]:
        with self._lock:
            return [*self._any, *(waiter for same in self._by_payload.values() for waiter in same)]

    def _dispatch(self, channel: str, payload: str) -> None:
        with self._lock:
            found = [waiter for waiter in self._any if waiter.wake.matches(channel, payload)]
            found.extend(w for w in self._by_payload.get(payload, ()) if w.wake.matches(channel, payload))
        for waiter in found:
            waiter.notify()

    def _read(self, conn: Any, read: socket.socket) -> None:
        """Deliver the connection's notifications as they come, until the hub closes (returns) or the
        connection is lost (raises)."""
        import psycopg

        pgconn = conn.pgconn
        with selectors.DefaultSelector() as selector:
            selector.register(pgconn.socket, selectors.EVENT_READ, conn)
            selector.register(read, selectors.EVENT_READ, read)
            while True:
                while (note := pgconn.notifies()) is not None:
                    self._dispatch(note.relname.decode(errors="replace"), note.extra.decode(errors="replace"))
                if any(key.data is read for key, _ in selector.select()):
                    return
                pgconn.consume_input()
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the listening connection is lost")

    def _run(self, conn: Any, read: socket.socket) -> None:
        """The thread: read the connection; when it is lost, wake every wait (to try again), make it again
        (at once, then every ``RECONNECT_SECONDS``) and wake them once more as it listens."""
        try:
            while conn is not None:
                since = time.monotonic()
                try:
                    self._read(conn, read)
                    return  # closed
                except Exception as exc:  # lost: the waits try again; notifications until it is back are lost
                    log.warning("the listening connection is lost (%s); listening again", redact(str(exc)))
                finally:
                    _quietly_close(conn)
                conn = None
                for waiter in self._everyone():
                    waiter.notify()
                pause = 0.0 if time.monotonic() - since >= RECONNECT_SECONDS else RECONNECT_SECONDS
                told = False
                while conn is None:
                    if _readable(read, pause) or self._closed:
                        return
                    try:
                        conn = self._connect()
                    except Exception as exc:
                        if not told:  # once: meanwhile the waits try again every RECHECK_SECONDS
                            told = True
                            log.warning(
                                "cannot listen again yet (%s); trying every %g s",
                                redact(str(exc)),
                                RECONNECT_SECONDS,
                            )
                        pause = RECONNECT_SECONDS
                for waiter in self._everyone():
                    waiter.notify()
        finally:
            read.close()

    def close(self) -> None:
        """End the thread (it closes the connection) and wake every wait; no wait registers any more."""
        with self._lock:
            forked = self._pid != os.getpid()
            self._closed = True
            thread, wakeup, self._thread, self._wakeup = self._thread, self._wakeup, None, None
        if forked:  # the parent's thread and connection are the parent's to close
            return
        if wakeup is not None:
            with suppress(OSError):
                wakeup.send(b"x")
            wakeup.close()
        for waiter in self._everyone():
            waiter.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)


def _readable(sock: socket.socket, seconds: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(seconds))


def _quietly_close(conn: Any) -> None:
    with suppress(Exception):  # already broken
        conn.close()


class Listeners:
    """What a store's waits sleep with (any thread): on PostgreSQL the store's hub, which every wait
    registers with; on SQLite a listener lent to each wait, up to ``MAX_IDLE_LISTENERS`` kept for the next
    ones. Closed with the store."""

    def __init__(self, url: Any) -> None:
        self.url = url
        self.closed = False
        self.hub = _Hub(url) if url.dialect == "postgres" else None
        self._idle: list[_SQLiteListener] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        if self.hub is not None:  # a store dropped without close: its hub's thread and connection end
            weakref.finalize(self, self.hub.close)

    def _take(self) -> _SQLiteListener:
        with self._lock:
            if self.closed:
                raise _closed_store()
            if self._pid != os.getpid():  # a forked child: the parent's connections are not its own
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        assert self.url.path is not None
        return _SQLiteListener(self.url.path)

    def _keep(self, listener: _SQLiteListener) -> bool:
        with self._lock:
            if self.closed or self._pid != os.getpid() or len(self._idle) >= MAX_IDLE_LISTENERS:
                return False
            self._idle.append(listener)
            return True

    def acquire(self, wake: Wake = WORK) -> _SQLiteListener | _ThreadWaiter:
        """A listener for one blocking wait for ``wake``, armed: on PostgreSQL registered with the hub (the
        hub started first if need be)."""
        if self.hub is None:
            return self._take()
        waiter = _ThreadWaiter(wake)
        while not self.hub.register(waiter):
            self.hub.start()
        return waiter

    async def acquire_async(self, wake: Wake = WORK) -> _SQLiteListener | _TaskWaiter:
        """``acquire`` for an awaited wait: the hub's first connection is made in a thread."""
        if self.hub is None:
            return self._take()
        waiter = _TaskWaiter(wake, asyncio.get_running_loop())
        while not self.hub.register(waiter):
            await asyncio.to_thread(self.hub.start)
        return waiter

    def release(self, listener: Any) -> None:
        """A wait's listener, back: unregistered from the hub, or kept (else closed)."""
        if isinstance(listener, _Waiter):
            assert self.hub is not None
            self.hub.unregister(listener)
        elif not self._keep(listener):
            listener.close()

    def discard(self, listener: Any) -> None:
        """A wait's listener after an error: unregistered, or closed (perhaps broken) and never lent again."""
        if isinstance(listener, _Waiter):
            assert self.hub is not None
            self.hub.unregister(listener)
        else:
            listener.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for listener in idle:
            listener.close()
        if self.hub is not None:
            self.hub.close()


def listeners(store: Any) -> Listeners:
    """The store's listeners, made on its first wait."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", Listeners(store.url))
    return found


def close(store: Any) -> None:
    """Close the store's hub (its thread and connection; the waits in progress are woken) or idle SQLite
    listeners (one lent out is closed when it comes back). A store that never waited gets its listeners
    closed here, so that a wait after ``close`` is refused before it makes a hub (a listening connection and
    its thread, for a wait that cannot run)."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", Listeners(store.url))
    found.close()


async def close_async(store: Any) -> None:
    """``close`` for an ``AsyncStore``."""
    close(store)


def _sleep(listener: Any, wake: Wake, seconds: float) -> None:
    """One sleep of a blocking wait (``wake`` is the listener's own: a hub's waiter is woken only by it)."""
    if isinstance(listener, _SQLiteListener):
        for pause in listener.polls(seconds):
            time.sleep(pause)
        return
    listener.sleep(seconds)


async def _sleep_async(listener: Any, wake: Wake, seconds: float) -> None:
    """``_sleep`` for an awaited wait."""
    if isinstance(listener, _SQLiteListener):
        for pause in listener.polls(seconds):
            await asyncio.sleep(pause)
        return
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
                    listener.arm()
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
        pool.release(listener)
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
                    listener.arm()
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
        pool.release(listener)
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
    "MAX_IDLE_LISTENERS",
    "PENDING",
    "RECHECK_SECONDS",
    "RECONNECT_SECONDS",
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
    "connection_lost",
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

"""The PostgreSQL hub (``musicstore.waiting``): a store's one listening connection per process, read by a
daemon thread that wakes the waits registered with it (``_Waiter``: a thread's or an event loop's)."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import selectors
import socket
import threading
import time
import weakref
from contextlib import suppress
from typing import Any

from ..backends.postgres_settings import connect_settings
from ..masking import redact
from .herds import Herds
from .waiters import Registry, _closed_store, _TaskWaiter, _ThreadWaiter, _Waiter, gone, notify_all
from .wakes import FINISHED, PENDING

log = logging.getLogger("musicstore.waiting")  # the package's logger, as before the split

_SWEEP_AFTER = 64
"""The fewest registrations between two sweeps of the hub's waits of closed event loops (``_Hub._sweep``)."""

RECONNECT_SECONDS = 1.0
"""How long the PostgreSQL hub pauses between two attempts to make its lost connection again (the first is
at once, unless the connection lost before it was lost less than this earlier)."""
KEEPALIVE_SECONDS = 5.0
"""How long the hub's connection may stay quiet (no notification, no answer) before the hub asks it for an
answer (an empty query): a connection gone silent (a dropped network, a NAT or firewall that forgot it, a host
gone without a word) never makes its socket readable, so only an unanswered question finds it lost."""
ANSWER_SECONDS = 5.0
"""How long the hub waits for that answer before it takes the connection as lost and makes it again."""


_FORKABLE: weakref.WeakSet[Any] = weakref.WeakSet()
"""This process's hubs and pollers: a forked child makes their locks again (:func:`_after_fork`)."""


def _after_fork() -> None:
    """In a forked child: each hub's and poller's locks made anew (a thread of the parent may have held one at
    the fork, and the child's first wait would block on it for ever), its parent's waits forgotten."""
    for each in list(_FORKABLE):
        each._relock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)


def _listen_sql() -> str:
    return f"LISTEN {PENDING}; LISTEN {FINISHED}"


class _Hub(Registry):
    """A store's one PostgreSQL listening connection (per process), shared by all its waits: a daemon thread
    reads it continuously and wakes the registered waits a notification matches."""

    def __init__(self, url: Any, *, connect_timeout: int | None = None) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        """libpq's connect timeout for the listening connection (the store's connections' own, from its
        ``busy_timeout``): a server that stops answering fails the wait that makes the connection, and each
        reconnection attempt, instead of holding them until the operating system gives up (or forever)."""
        self.connections = 0
        """Connections made so far (the first, then one per reconnection)."""
        self._lock = threading.Lock()
        self._starting = threading.Lock()
        self._attempts = 0  # connections ``start`` tried to make
        self._failed: Exception | None = None  # why the last of them failed (None: it did not)
        self._closed = False
        self._any: set[_Waiter] = set()  # waits for any payload (WORK)
        self._herds = Herds()  # claim waits: one of a herd woken per notification
        self._by_payload: dict[str, set[_Waiter]] = {}  # waits for one job's notification (finished)
        self._registered = 0  # registrations since the last sweep (``_sweep``), and the waits it left
        self._left = 0
        self._thread: threading.Thread | None = None
        self._wakeup: socket.socket | None = None  # the end of the pair that ends the thread's wait at close
        self._pid = os.getpid()
        _FORKABLE.add(self)

    def _own(self) -> None:
        """Under the lock: a forked child forgets its parent's thread, connection and waits (the connection
        is dropped, not closed: psycopg does not end a connection in a process that did not open it); its
        copy of the wake-up socket is closed (the parent's stays open; dropped, it was a ResourceWarning)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            if self._wakeup is not None:
                with contextlib.suppress(OSError):
                    self._wakeup.close()
            self._any, self._by_payload, self._thread, self._wakeup = set(), {}, None, None
            self._herds = Herds()

    def _relock(self) -> None:
        """In a forked child (:func:`_after_fork`): new locks, and the parent's thread and waits forgotten."""
        self._lock, self._starting = threading.Lock(), threading.Lock()
        self._own()

    def _connect(self) -> Any:
        import psycopg

        url = self.url.url
        conn = psycopg.connect(url, autocommit=True, **connect_settings(url, self.connect_timeout))
        try:
            conn.execute(_listen_sql())
        except BaseException:
            conn.close()
            raise
        self.connections += 1
        return conn

    def start(self) -> None:
        """Listen, unless the hub does already: the first wait of this process makes the connection (its
        errors are that wait's) and starts the thread. The waits that queued behind an attempt share it: when
        it failed they raise its error (a copy) at once, rather than each making an attempt of its own in
        turn (each up to the connect timeout: the last of many concurrent waits failed after all of them)."""
        seen = self._attempts
        with self._starting:
            with self._lock:
                if self._running():
                    return
            failed = self._failed if self._attempts != seen else None
            if failed is not None:
                raise copy.copy(failed) from failed
            self._attempts += 1
            try:
                conn = self._connect()
            except Exception as exc:
                self._failed = exc
                raise
            self._failed = None
            with self._lock:
                if self._closed:
                    conn.close()
                    raise _closed_store()
                self._wakeup, read = socket.socketpair()
                thread = threading.Thread(
                    target=self._run, args=(conn, read), name="musicstore-listen", daemon=True
                )
                self._thread = thread
            try:
                thread.start()  # RuntimeError where the host lets no thread start (RLIMIT_NPROC, memory)
            except BaseException:
                with self._lock:
                    wakeup, self._thread, self._wakeup = self._wakeup, None, None
                for end in (read, wakeup):
                    if end is not None:
                        end.close()
                conn.close()
                raise

    def register(self, waiter: _Waiter) -> bool:
        """Wake ``waiter`` at the notifications that match it from now on; False (nothing registered) when
        the hub is not started in this process (or its thread ended)."""
        with self._lock:
            if not self._running():
                return False
            payload = waiter.wake.payload
            if waiter.wake.herd is not None:
                self._herds.add(waiter)
            elif payload is None:
                self._any.add(waiter)
            else:
                self._by_payload.setdefault(payload, set()).add(waiter)
            self._registered += 1
            if self._registered > max(_SWEEP_AFTER, self._left):
                self._sweep()
            return True

    def _sweep(self) -> None:
        """Under the lock: unregister the waits of an event loop closed without cancelling its tasks
        (``gone``). A wait is dropped when a notification for it finds its loop closed (``_wake``), but a
        ``wait_for`` of a job that never finishes gets none: swept here once as many waits registered as the
        last sweep left (amortized: a registration's cost stays constant), so they cannot pile up."""
        self._any = {waiter for waiter in self._any if not gone(waiter)}
        self._herds.sweep(gone)
        for payload, same in list(self._by_payload.items()):
            same.difference_update([waiter for waiter in same if gone(waiter)])
            if not same:
                del self._by_payload[payload]
        self._registered = 0
        self._left = self._count()

    def _forget(self, waiter: _Waiter) -> None:
        payload = waiter.wake.payload
        if payload is None:
            self._any.discard(waiter)
        elif (same := self._by_payload.get(payload)) is not None:
            same.discard(waiter)
            if not same:
                del self._by_payload[payload]

    def _others(self) -> int:
        return len(self._any) + sum(len(same) for same in self._by_payload.values())

    def _everyone(self) -> list[_Waiter]:
        with self._lock:
            every = [*self._any, *self._herds]
            return every + [waiter for same in self._by_payload.values() for waiter in same]

    def _dispatch(self, channel: str, payload: str) -> None:
        with self._lock:
            found = [waiter for waiter in self._any if waiter.wake.matches(channel, payload)]
            found.extend(w for w in self._by_payload.get(payload, ()) if w.wake.matches(channel, payload))
            found.extend(self._herds.wake(channel, payload))
        self._wake(found)

    def _read(self, conn: Any, read: socket.socket) -> None:
        """Deliver the connection's notifications as they come, until the hub closes (returns) or the
        connection is lost (raises)."""
        import psycopg

        pgconn = conn.pgconn
        asked: float | None = None  # when the question now unanswered was sent (``KEEPALIVE_SECONDS``)
        heard = time.monotonic()  # when the connection last said anything
        with selectors.DefaultSelector() as selector:
            selector.register(pgconn.socket, selectors.EVENT_READ, conn)
            selector.register(read, selectors.EVENT_READ, read)
            while True:
                while (note := pgconn.notifies()) is not None:
                    self._dispatch(note.relname.decode(errors="replace"), note.extra.decode(errors="replace"))
                due = heard + KEEPALIVE_SECONDS if asked is None else asked + ANSWER_SECONDS
                ready = selector.select(max(0.0, due - time.monotonic()))
                if any(key.data is read for key, _ in ready):
                    return
                if not ready:  # quiet until ``due``
                    if asked is not None:
                        silent = f"the listening connection did not answer in {ANSWER_SECONDS:g} s"
                        raise psycopg.OperationalError(silent)
                    pgconn.send_query(b"")  # an empty query: the server answers at once
                    if pgconn.flush():
                        raise psycopg.OperationalError("the listening connection took no question")
                    asked = time.monotonic()
                    continue
                pgconn.consume_input()
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the listening connection is lost")
                heard = time.monotonic()
                if asked is not None and not pgconn.is_busy():  # the answer came whole
                    while pgconn.get_result() is not None:
                        pass
                    asked = None

    def _run(self, conn: Any, read: socket.socket) -> None:
        """The thread: read the connection; when it is lost, wake every wait (to try again), make it again
        (at once, then every ``RECONNECT_SECONDS``) and wake them once more as it listens."""
        lost = -math.inf  # when the connection was last lost
        try:
            while conn is not None:
                try:
                    self._read(conn, read)
                    return  # closed
                except Exception as exc:  # lost: the waits try again; notifications until it is back are lost
                    log.warning("the listening connection is lost (%s); listening again", redact(str(exc)))
                finally:
                    _quietly_close(conn)
                conn = None
                self._wake(self._everyone())
                # at once, but for a connection lost again within RECONNECT_SECONDS (no loop of attempts)
                pause = 0.0 if time.monotonic() - lost >= RECONNECT_SECONDS else RECONNECT_SECONDS
                lost = time.monotonic()
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
                self._wake(self._everyone())
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
        notify_all(self._everyone())
        if thread is not None and thread is not threading.current_thread() and thread.ident:
            thread.join(5.0)


def _readable(sock: socket.socket, seconds: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(seconds))


def _quietly_close(conn: Any) -> None:
    with suppress(Exception):  # already broken
        conn.close()


__all__ = [  # and the waits of waiters.py, as before they moved there
    "ANSWER_SECONDS",
    "KEEPALIVE_SECONDS",
    "RECONNECT_SECONDS",
    "_Hub",
    "_TaskWaiter",
    "_ThreadWaiter",
    "_Waiter",
]

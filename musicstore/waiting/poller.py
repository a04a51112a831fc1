"""The SQLite poller (``musicstore.waiting``): a store's one connection per process that reads ``PRAGMA
data_version``, polled by a daemon thread while waits are registered, waking the registered waits
(``_Waiter``, as the PostgreSQL hub's; of the claim waits, one of each herd) when another connection
committed."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

from ..backends.sqlite import require_file
from ..errors import MigrationError
from ..masking import redact
from ..queries import load
from .herds import Herds
from .hub import _FORKABLE, RECONNECT_SECONDS
from .waiters import Registry, _Waiter, gone, notify_all

log = logging.getLogger("musicstore.waiting")

SQLITE_POLL_SECONDS = 0.005
"""How often the poller reads ``PRAGMA data_version`` while a wait sleeps (the wake-up's added latency is up
to this)."""


class _Poller(Registry):
    """A store's one ``PRAGMA data_version`` connection (per process), shared by all its waits: however many
    wait at once, one connection and one thread poll (every ``SQLITE_POLL_SECONDS`` while any is registered,
    none while none is). When the version changes, the waits for work are woken (of the claim waits, one of
    each herd: ``herds``), and the waits for a job (``wait_for``) whose job one query (``unfinished_among``)
    finds finished or gone: a commit that ends one job of a thousand awaited wakes one wait, not a thousand
    (each of which would read its row). Before, each wait polled a connection of its own: a thousand
    concurrent ``wait_for`` held a thousand files open and spent most of a core polling."""

    _lock: threading.Condition

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections = 0
        """Connections made so far (the first, then one per reconnection after an error)."""
        self._lock = threading.Condition()  # the waits, the state; the idle thread waits on it
        self._reading = threading.Lock()  # the connection: the thread's polls, a first registration's read
        self._closed = False
        self._waiters: set[_Waiter] = set()  # but the claim waits: in herds, one woken per change
        self._herds = Herds()
        self._conn: sqlite3.Connection | None = None
        self._seen = -1  # the version last read (the thread's, or a registration's after an idle spell)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._unfinished = load("sqlite", "sqlite3")["unfinished_among"].sql
        _FORKABLE.add(self)

    def _own(self) -> None:
        """Under the lock: a forked child forgets its parent's thread, connection and waits (dropped, not
        closed: the parent's to close)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._waiters, self._herds, self._conn, self._thread = set(), Herds(), None, None
            self._reading = threading.Lock()

    def _relock(self) -> None:
        """In a forked child (``hub._after_fork``): new locks, and the parent's thread and waits forgotten."""
        self._lock = threading.Condition()
        self._own()

    def _connect(self) -> sqlite3.Connection:
        require_file(self.path)  # MigrationError: sqlite3 would make an empty database where there is none
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.connections += 1
        return conn

    def _version(self, conn: sqlite3.Connection) -> int:
        with self._reading:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def start(self) -> None:
        """Poll, unless the poller does already: the first wait of this process makes the connection (its
        errors are that wait's) and starts the thread."""
        with self._lock:
            if self._running():
                return
            conn = self._connect()
            try:
                self._seen = self._version(conn)
            except BaseException:
                conn.close()
                raise
            thread = threading.Thread(target=self._run, args=(conn,), name="musicstore-poll", daemon=True)
            try:
                thread.start()  # RuntimeError where the host lets no thread start (RLIMIT_NPROC, memory)
            except BaseException:
                conn.close()  # none kept: close() found a thread that never started, and left it open
                raise
            self._conn, self._thread = conn, thread

    def register(self, waiter: _Waiter) -> bool:
        """Wake ``waiter`` at every commit of another connection from now on; False (nothing registered) when
        the poller is not started in this process (or its thread ended). The first wait after an idle spell
        reads the version itself, so that a commit between its registration and the thread's next poll wakes
        it."""
        with self._lock:
            if not self._running():
                return False
            if not self._waiters and not self._herds and self._conn is not None:
                self._seen = self._version(self._conn)
            if waiter.wake.herd is not None:
                self._herds.add(waiter)
            else:
                self._waiters.add(waiter)
            self._lock.notify()
            return True

    def _forget(self, waiter: _Waiter) -> None:
        self._waiters.discard(waiter)

    def _others(self) -> int:
        return len(self._waiters)

    def _live(self) -> list[_Waiter]:
        """Under the lock: the registered waits, those of an event loop closed without cancelling its tasks
        unregistered first (``waiters.gone``): a ``wait_for`` of a job that never finishes is otherwise never
        woken, and such waits keep the thread polling for nobody."""
        dead = [waiter for waiter in self._waiters if gone(waiter)]
        self._waiters.difference_update(dead)
        self._herds.sweep(gone)
        return list(self._waiters)

    def _wake_all(self) -> None:
        with self._lock:
            woken = [*self._live(), *self._herds]
        notify_all(woken)

    def _changed(self, conn: sqlite3.Connection, version: int) -> None:
        """When ``version`` differs from the one last seen: wake the waits for work, and those for a job that
        is no longer pending or processing (read after the version, so a commit it shows is read too)."""
        with self._lock:
            if version == self._seen:
                return
            self._seen = version
            woken = self._live()
            herds = self._herds.wake()
        awaited = {w.wake.payload for w in woken if w.wake.payload is not None}
        if awaited:
            with self._reading:
                rows = conn.execute(self._unfinished, {"ids": json.dumps(sorted(awaited))}).fetchall()
            running = {row[0] for row in rows}
            woken = [w for w in woken if w.wake.payload is None or w.wake.payload not in running]
        self._wake([*woken, *herds])

    def _poll(self, conn: sqlite3.Connection) -> None:
        """Read the version every ``SQLITE_POLL_SECONDS`` while a wait is registered, until the poller closes
        (returns) or a read fails (raises)."""
        while True:
            with self._lock:
                while not self._waiters and not self._herds and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
            self._changed(conn, self._version(conn))
            if self._pause(SQLITE_POLL_SECONDS):
                return

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` (less when a wait registers); whether the poller closed."""
        with self._lock:
            if not self._closed:
                self._lock.wait(seconds)
            return self._closed

    def _run(self, conn: sqlite3.Connection) -> None:
        """The thread: poll; when a read fails, wake every wait (to try again, and meet the error if it is
        the database's) and make the connection again every ``RECONNECT_SECONDS`` until it reads, then wake
        them once more (for the commits of the gap)."""
        while True:
            try:
                self._poll(conn)
                return  # closed
            except sqlite3.Error as exc:
                log.warning("the polling connection failed (%s); polling again", redact(str(exc)))
            finally:
                with self._lock:
                    self._conn = None
                conn.close()
            self._wake_all()
            while True:
                if self._pause(RECONNECT_SECONDS):
                    return
                try:
                    conn = self._connect()
                except (sqlite3.Error, MigrationError):
                    continue
                try:
                    version = self._version(conn)
                    break
                except sqlite3.Error:
                    conn.close()
            with self._lock:
                self._conn, self._seen = conn, version
            self._wake_all()

    def close(self) -> None:
        """End the thread (it closes the connection) and wake every wait; no wait registers any more."""
        with self._lock:
            forked = self._pid != os.getpid()
            self._closed = True
            thread, self._thread = self._thread, None
            self._lock.notify_all()
            woken = [] if forked else [*self._waiters, *self._herds]
        notify_all(woken)
        if not forked and thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

"""What a store's waits sleep with (``musicstore.waiting``): on PostgreSQL its hub, on SQLite a connection
that reads ``PRAGMA data_version``, lent to each wait."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .hub import _closed_store, _Hub, _TaskWaiter, _ThreadWaiter, _Waiter
from .wakes import WORK, Wake

SQLITE_POLL_SECONDS = 0.005
"""How often a sleeper reads ``PRAGMA data_version`` on SQLite (the wake-up's added latency is up to this)."""
MAX_IDLE_LISTENERS = 4
"""How many SQLite listeners (a connection each) a store keeps for its next waits once their waits end; a
burst of more concurrent waits closes the rest as they end. (PostgreSQL waits share the store's hub: one
connection however many waits.)"""


class _SQLiteListener:
    """``PRAGMA data_version`` on a connection of its own."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.seen = -1
        self.woken = False
        """Set when the store closes while this listener is lent: its sleep ends at the next poll (once: the
        wait tries again, and a later sleep polls as before)."""

    def version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def arm(self) -> None:
        self.seen = self.version()

    def polls(self, seconds: float) -> Iterator[float]:
        """The pauses of one sleep, until another connection committed, the store closed or ``seconds``
        passed."""
        deadline = time.monotonic() + seconds
        while self.version() == self.seen:
            if self.woken:
                self.woken = False
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield min(SQLITE_POLL_SECONDS, left)

    def close(self) -> None:
        self.conn.close()


class Listeners:
    """What a store's waits sleep with (any thread): on PostgreSQL the store's hub, which every wait
    registers with; on SQLite a listener lent to each wait, up to ``MAX_IDLE_LISTENERS`` kept for the next
    ones. Closed with the store."""

    def __init__(self, url: Any, *, connect_timeout: int | None = None) -> None:
        self.url = url
        self.closed = False
        self.hub = _Hub(url, connect_timeout=connect_timeout) if url.dialect == "postgres" else None
        self._idle: list[_SQLiteListener] = []
        self._lent: set[_SQLiteListener] = set()  # woken when the store closes (the hub wakes its own)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        if self.hub is not None:  # a store dropped without close: its hub's thread and connection end
            weakref.finalize(self, self.hub.close)

    def _take(self) -> _SQLiteListener:
        with self._lock:
            if self.closed:
                raise _closed_store()
            if self._pid != os.getpid():  # a forked child: the parent's connections are not its own
                self._idle, self._lent, self._pid = [], set(), os.getpid()
            if self._idle:
                listener = self._idle.pop()
                self._lent.add(listener)
                return listener
        assert self.url.path is not None
        listener = _SQLiteListener(self.url.path)
        with self._lock:
            if self.closed:  # closed meanwhile: nobody would wake it
                listener.close()
                raise _closed_store()
            self._lent.add(listener)
        return listener

    def _keep(self, listener: _SQLiteListener) -> bool:
        with self._lock:
            self._lent.discard(listener)
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
            with self._lock:
                self._lent.discard(listener)
            listener.close()

    def close(self) -> None:
        """Close the idle listeners and the hub, and wake every wait in progress (a lent SQLite listener's
        sleep ends; it is closed when it comes back)."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            for lent in self._lent:
                lent.woken = True
        for listener in idle:
            listener.close()
        if self.hub is not None:
            self.hub.close()


def _made(store: Any) -> Listeners:
    """New listeners for ``store``: its hub connects with the store's connections' connect timeout (libpq's,
    from ``busy_timeout``: ``backends.postgres._connect_timeout``)."""
    timeout = getattr(getattr(store, "_connector", None), "timeout", None)
    if timeout is None or store.url.dialect != "postgres":
        return Listeners(store.url)
    from ..backends.postgres import _connect_timeout

    return Listeners(store.url, connect_timeout=_connect_timeout(timeout))


def listeners(store: Any) -> Listeners:
    """The store's listeners, made on its first wait."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", _made(store))
    return found


def close(store: Any) -> None:
    """Close the store's hub (its thread and connection; the waits in progress are woken) or idle SQLite
    listeners (one lent out is closed when it comes back). A store that never waited gets its listeners
    closed here, so that a wait after ``close`` is refused before it makes a hub (a listening connection and
    its thread, for a wait that cannot run)."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", _made(store))
    found.close()


async def close_async(store: Any) -> None:
    """``close`` for an ``AsyncStore``."""
    close(store)

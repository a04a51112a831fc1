"""What a store's waits sleep with (``musicstore.waiting``): its hub, one per store and process, that wakes
the waits registered with it: on PostgreSQL a LISTEN connection, on SQLite a ``PRAGMA data_version``
poll."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from .hub import _Hub
from .poller import _Poller
from .waiters import _TaskWaiter, _ThreadWaiter, _Waiter
from .wakes import WORK, Wake


class Listeners:
    """What a store's waits sleep with (any thread): its hub (PostgreSQL: ``_Hub``, LISTEN; SQLite:
    ``_Poller``, ``PRAGMA data_version``), one per store and process, which every wait registers with.
    Closed with the store."""

    def __init__(self, url: Any, *, connect_timeout: int | None = None) -> None:
        self.url = url
        self.closed = False
        self.hub: _Hub | _Poller
        if url.dialect == "postgres":
            self.hub = _Hub(url, connect_timeout=connect_timeout)
        else:
            assert url.path is not None
            self.hub = _Poller(url.path)
        weakref.finalize(self, self.hub.close)  # a store dropped without close: its thread and connection end

    def acquire(self, wake: Wake = WORK) -> _ThreadWaiter:
        """A listener for one blocking wait for ``wake``, registered with the hub (started first if need
        be)."""
        waiter = _ThreadWaiter(wake)
        while not self.hub.register(waiter):
            self.hub.start()
        return waiter

    async def acquire_async(self, wake: Wake = WORK) -> _TaskWaiter:
        """``acquire`` for an awaited wait: the hub's first connection is made in a thread."""
        waiter = _TaskWaiter(wake, asyncio.get_running_loop())
        while not self.hub.register(waiter):
            await asyncio.to_thread(self.hub.start)
        return waiter

    def arm(self, listener: _Waiter) -> None:
        """Before each try of a wait: the notifications before it forgotten (its flag cleared), then a
        claim wait's wake-up spent (``herds``: the try begins after it)."""
        listener.arm()
        self.hub.armed(listener)

    def release(self, listener: _Waiter, *, took: bool = False) -> None:
        """A wait's listener, back: unregistered from the hub (``took``: its last try claimed a job, and a
        claim wait passes a wake-up on to another of its herd: more may have come)."""
        self.hub.unregister(listener, took=took)

    def discard(self, listener: _Waiter) -> None:
        """A wait's listener after an error (its try's, a cancel): unregistered; a claim wait passes a wake-up
        on, as one whose try took a job does: the notification its try began after may be for a job it did
        not get to (the others of its herd slept until the re-try)."""
        self.hub.unregister(listener, took=True)

    def close(self) -> None:
        """Close the hub (its thread and connection) and wake every wait in progress."""
        self.closed = True
        self.hub.close()


def _made(store: Any) -> Listeners:
    """New listeners for ``store``: its hub connects with the store's connections' connect timeout (libpq's,
    from ``busy_timeout``: ``backends.postgres_settings._connect_timeout``)."""
    timeout = getattr(getattr(store, "_connector", None), "timeout", None)
    if timeout is None or store.url.dialect != "postgres":
        return Listeners(store.url)
    from ..backends.postgres_settings import _connect_timeout

    return Listeners(store.url, connect_timeout=_connect_timeout(timeout))


def listeners(store: Any) -> Listeners:
    """The store's listeners, made on its first wait."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", _made(store))
    return found


def close(store: Any) -> None:
    """Close the store's hub (its thread and connection; the waits in progress are woken). A store that never
    waited gets its listeners closed here, so that a wait after ``close`` is refused before it makes a hub (a
    connection and its thread, for a wait that cannot run)."""
    found: Listeners | None = store.__dict__.get("_listeners")
    if found is None:
        found = store.__dict__.setdefault("_listeners", _made(store))
    found.close()


async def close_async(store: Any) -> None:
    """``close`` for an ``AsyncStore``."""
    close(store)

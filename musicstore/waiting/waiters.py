"""The waits a hub wakes (``musicstore.waiting``): ``_Waiter``, one wait's registration (a thread's or an
event loop's), ``notify_all`` that wakes them, and ``Registry``, what the PostgreSQL hub (``hub._Hub``) and
the SQLite poller (``poller._Poller``) share of their registrations: the claim waits in herds (``Herds``),
and the wake-up a claim wait that ends passes on to another of its herd."""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress

from ..errors import InvalidInput
from .herds import Herds
from .wakes import Wake


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


def notify_all(waiters: list[_Waiter]) -> list[_Waiter]:
    """Wake ``waiters``: a thread's at once, an event loop's in one callback per loop (one write to the loop's
    wake-up pipe for all its waits, not one each: a thousand waits woken at once made a thousand). Returns
    the waits of a loop that is closed (``gone``), for the hub to unregister: nobody sleeps on them any
    more, and a loop closed without cancelling its tasks (not ``asyncio.run``) leaves them registered, each
    holding its task."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_TaskWaiter]] = {}
    for waiter in waiters:
        if isinstance(waiter, _TaskWaiter):
            by_loop.setdefault(waiter._loop, []).append(waiter)
        else:
            waiter.notify()
    dead: list[_Waiter] = []
    for loop, found in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, [waiter._event for waiter in found])
        except RuntimeError:  # its loop is closed
            dead.extend(found)
    return dead


def gone(waiter: _Waiter) -> bool:
    """Whether ``waiter`` is an awaited wait whose event loop is closed (``notify_all``)."""
    return isinstance(waiter, _TaskWaiter) and waiter._loop.is_closed()


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()


def _closed_store() -> InvalidInput:
    return InvalidInput("the store is closed; open a new one to wait")


class Registry:
    """A hub's registered waits: the claim waits (those with a ``Wake.herd``) in ``_herds``, the others
    each hub's own (``_forget``, ``_others``), all under ``_lock``, which is never held while a wait is
    woken (``_wake``); and its thread (``_thread``: this process's, ``_own``) until it is ``_closed``."""

    _lock: threading.Lock | threading.Condition
    _herds: Herds
    _thread: threading.Thread | None
    _closed: bool

    def _own(self) -> None:
        """Under the lock: a forked child forgets its parent's thread, connection and waits."""
        raise NotImplementedError

    @property
    def started(self) -> bool:
        with self._lock:
            return self._running(refuse=False)

    def _running(self, *, refuse: bool = True) -> bool:
        """Under the lock: whether this process's thread runs (``_own`` first); ``refuse``: a closed hub
        refuses the wait (``InvalidInput``)."""
        self._own()
        if refuse and self._closed:
            raise _closed_store()
        return self._thread is not None and self._thread.is_alive()

    def unregister(self, waiter: _Waiter, *, took: bool = False) -> None:
        """``waiter`` no longer woken (``took``: its last try claimed a job; ``Herds.remove``)."""
        self._wake(self._drop(waiter, took))

    def _drop(self, waiter: _Waiter, took: bool = False) -> list[_Waiter]:
        """Unregister ``waiter``; the waits it passes its wake-up on to (a claim wait's, ``Herds``)."""
        with self._lock:
            if waiter.wake.herd is not None:
                return self._herds.remove(waiter, took=took)
            self._forget(waiter)
            return []

    def _forget(self, waiter: _Waiter) -> None:
        """Under the lock: unregister ``waiter``, not a claim wait."""
        raise NotImplementedError

    def armed(self, waiter: _Waiter) -> None:
        """``waiter`` begins a try (after its own ``arm``): a claim wait's wake-up is spent (``Herds``)."""
        with self._lock:
            self._herds.armed(waiter)

    def _wake(self, waiters: list[_Waiter]) -> None:
        """``notify_all``, and unregister the waits of a closed event loop (a claim wait's wake-up passed on
        to another of its herd)."""
        while waiters:
            waiters = [passed for dead in notify_all(waiters) for passed in self._drop(dead)]

    @property
    def waiters(self) -> int:
        """How many waits are registered."""
        with self._lock:
            return self._count()

    def _count(self) -> int:
        """Under the lock: how many waits are registered."""
        return len(self._herds) + self._others()

    def _others(self) -> int:
        """Under the lock: how many waits are registered outside the herds."""
        raise NotImplementedError

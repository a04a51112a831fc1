"""Claim waits in herds (``musicstore.waiting``): a notification wakes one wait of a herd, not all of them.

The waits of one herd (``Wake.herd``: the claim waits with the same claim options, ``claiming``) are alike:
what one of them would claim, any of them would. So a notification (PostgreSQL: one NOTIFY; SQLite: one
change of ``data_version``) wakes one of them, not every one (before, each enqueue woke all of them: a
thousand idle ``claim_next(wait=...)`` made a thousand claims per enqueue, and on an ``AsyncStore`` the
enqueues queued for a pooled connection behind them). A woken wait holds the wake-up until its next try
begins (``armed``); one that ends without trying (stopped, cancelled, its deadline passed, an error) passes
it on to another of its herd, and so does every try that claimed a job (``remove`` with ``took``): more
jobs may have come with the one notification (several enqueues between two of SQLite's polls, a batch in
one transaction), and the chain goes on while the tries take jobs. A try that took nothing ends the chain:
it began after the notification, so it saw every job the notification was for, and found none left. So
every notification is followed by at least one try of each herd that began after it, and a claim try per
notification and per job claimed (two when a woken wait's own try took a job: the try it began before the
wake-up may not have seen it) is what an enqueue costs, however many wait. The least recently armed wait is
woken first (one asleep, rather than one trying right now). Used under the hub's lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .waiters import _Waiter
    from .wakes import Wake


class Herds:
    """A hub's claim waits (those with a ``Wake.herd``), by their ``Wake``; the hub's lock held for each
    call. Returns the waits to wake, for the hub to notify outside its lock."""

    __slots__ = ("_idle", "_woken")

    def __init__(self) -> None:
        self._idle: dict[Wake, dict[_Waiter, None]] = {}
        """Each herd's waits that hold no wake-up, the least recently armed first."""
        self._woken: set[_Waiter] = set()
        """Waits woken that have not begun a try since: each holds a wake-up."""

    def __len__(self) -> int:
        return len(self._woken) + sum(len(idle) for idle in self._idle.values())

    def __iter__(self) -> Iterator[_Waiter]:
        yield from self._woken
        for idle in self._idle.values():
            yield from idle

    def add(self, waiter: _Waiter) -> None:
        """A new wait: it tries before it sleeps, so it holds no wake-up."""
        self._idle.setdefault(waiter.wake, {})[waiter] = None

    def armed(self, waiter: _Waiter) -> None:
        """``waiter`` begins a try: the wake-up it held (if any) is spent; it goes last in its herd."""
        if waiter in self._woken:
            self._woken.discard(waiter)
        elif waiter not in self._idle.get(waiter.wake, ()):
            return  # not one of the herds' (unregistered)
        idle = self._idle.setdefault(waiter.wake, {})
        idle.pop(waiter, None)
        idle[waiter] = None

    def remove(self, waiter: _Waiter, *, took: bool = False) -> list[_Waiter]:
        """``waiter`` ends (``took``: its last try claimed a job): the waits of its herd it passes its
        wake-up on to (one if it held one, one if it took a job)."""
        passes = int(took)
        if waiter in self._woken:
            self._woken.discard(waiter)
            passes += 1
        idle = self._idle.get(waiter.wake)
        if idle is not None:
            idle.pop(waiter, None)
        return [woken for _ in range(passes) if (woken := self._pick(waiter.wake)) is not None]

    def wake(self, channel: str | None = None, payload: str = "") -> list[_Waiter]:
        """A notification on ``channel`` with ``payload`` (None: SQLite's change, for every herd): one wait
        of each herd it matches."""
        found = []
        for wake in list(self._idle):
            if channel is None or wake.matches(channel, payload):
                woken = self._pick(wake)
                if woken is not None:
                    found.append(woken)
        return found

    def sweep(self, dead: Callable[[_Waiter], bool]) -> None:
        """Forget the waits ``dead`` says nobody sleeps on any more."""
        self._woken = {waiter for waiter in self._woken if not dead(waiter)}
        for wake, idle in list(self._idle.items()):
            for waiter in [waiter for waiter in idle if dead(waiter)]:
                del idle[waiter]
            if not idle:
                del self._idle[wake]

    def _pick(self, wake: Wake) -> _Waiter | None:
        """The least recently armed wait of ``wake``'s herd that holds no wake-up, now holding one."""
        idle = self._idle.get(wake)
        if not idle:
            self._idle.pop(wake, None)
            return None
        waiter = next(iter(idle))
        del idle[waiter]
        self._woken.add(waiter)
        return waiter

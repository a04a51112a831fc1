"""The queue's figures and its retry policy (``musicstore.models``): what ``requeue_expired`` did, when a
retried generation may be claimed again, and the queue's depth at one moment."""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidInput, shown


@dataclass(frozen=True, slots=True)
class Requeued:
    """What ``requeue_expired`` did: ids put back in the queue, ids failed for good."""

    requeued: list[str]
    failed: list[str]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a retried generation may be claimed again: ``fail(..., backoff=)``, ``requeue_expired(backoff=)``.

    After its n-th attempt the delay is ``min(cap_seconds, base_seconds * 2 ** (n - 1))``, less a random part
    of up to ``jitter`` of it (0: none; 1: anywhere from 0 to the delay), drawn per generation by the
    database, so that jobs failed together do not come back together. ``base_seconds=0``: at once.
    """

    base_seconds: float = 2.0
    cap_seconds: float = 600.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for name, high in (("base_seconds", 30 * 86_400.0), ("cap_seconds", 30 * 86_400.0), ("jitter", 1.0)):
            value = getattr(self, name)
            plain: object = None  # as a plain int or float: numpy's numbers too (bool, Fraction, Decimal: no)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                plain = operator.index(value)  # compared exactly (an int beyond any float is out of range)
            elif isinstance(value, numbers.Real) and not isinstance(value, numbers.Rational):
                plain = float(value)
            if not isinstance(plain, int | float) or not 0 <= plain <= high:
                raise InvalidInput(f"RetryPolicy.{name} must be from 0 to {high:g}, got {shown(value)}")
            object.__setattr__(self, name, float(plain))

    def delay_range(self, attempts: int) -> tuple[float, float]:
        """The shortest and longest delay, in seconds, after a generation's ``attempts``-th attempt (an
        integer from 1, as ``validate.integer`` takes it: numpy's too, not a bool nor a float)."""
        if isinstance(attempts, bool) or not isinstance(attempts, numbers.Integral) or attempts < 1:
            raise InvalidInput(f"attempts must be an integer from 1, got {shown(attempts)}")
        delay = min(self.cap_seconds, self.base_seconds * 2 ** min(operator.index(attempts) - 1, 40))
        return delay * (1 - self.jitter), delay


@dataclass(frozen=True, slots=True)
class QueueLevel:
    """The pending generations of one owner key (None: without one) at one priority."""

    owner_key: str | None
    priority: int
    pending: int
    deferred: int
    """Of ``pending``, how many wait for their ``run_after`` (a retry's backoff, or a later start)."""
    oldest_created_at: datetime
    ready_since: datetime | None = None
    """Since when the longest-waiting of its ready generations has been ready to claim: the later of its
    creation and its ``run_after`` (a retry's backoff, a later start). None: every one waits for its
    ``run_after``."""


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """The queue at one moment (``queue_depth``): pending by owner key and priority, processing by key."""

    at: datetime
    levels: list[QueueLevel]
    running: dict[str | None, int]

    @property
    def pending(self) -> int:
        return sum(level.pending for level in self.levels)

    @property
    def oldest_pending_age_seconds(self) -> float | None:
        """How long the oldest pending generation has waited (None: none is pending)."""
        if not self.levels:
            return None
        return max((self.at - min(level.oldest_created_at for level in self.levels)).total_seconds(), 0.0)

    @property
    def longest_ready_wait_seconds(self) -> float | None:
        """How long the longest-waiting ready generation has waited since it became ready to claim (None: none
        is ready): unlike ``oldest_pending_age_seconds``, a job scheduled for later or backing off before a
        retry does not count until its ``run_after`` (what an alert on a stalled queue should watch)."""
        ready = [level.ready_since for level in self.levels if level.ready_since is not None]
        return max((self.at - min(ready)).total_seconds(), 0.0) if ready else None

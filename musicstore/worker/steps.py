"""The worker loop's plan (``musicstore.worker``, which re-exports these names): the steps it yields
(:class:`Claim`, :class:`Handle`, :class:`Fail`, :class:`Pause`) and the report it keeps
(:class:`WorkerReport`)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..models import Generation


@dataclass(slots=True)
class WorkerReport:
    """What ``run`` did: jobs run to the end, cancelled while running, taken back, failed."""

    done: int = 0
    cancelled: int = 0
    lost: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.done + self.cancelled + self.lost + self.failed


@dataclass(frozen=True, slots=True)
class Claim:
    """Step: ``claim_next(worker_id, **options)``, and while it claims nothing and the worker is not
    stopping, sleep until an enqueue wakes it (at most ``WAIT_SLICE_SECONDS``) and claim again
    (``waiting.until``: one claim per sleep, the listener held throughout); the plan receives the claimed
    generation, or None once the worker is stopping."""

    worker_id: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Handle:
    """Step: run the handler on this claimed generation (what it returns is not used)."""

    generation: Generation


@dataclass(frozen=True, slots=True)
class Fail:
    """Step: ``fail(generation_id, message, **options)`` (a retry while attempts remain)."""

    generation_id: str
    message: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pause:
    """Step: sleep ``seconds`` before the next claim, ending at once when the worker is stopped (``stop()``
    during the pause, or before it)."""

    seconds: float


WorkerStep = Claim | Handle | Fail | Pause


Plan = Generator[WorkerStep, Any, WorkerReport]

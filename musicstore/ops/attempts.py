"""The attempts a worker's handler watches (re-exported by ``musicstore.ops.jobs``): what a ``fail`` or a
``complete_generation`` of this process made of a claimed generation's run while it was watched; and how a
claimed generation whose attempt an interrupt cut short goes back to the queue (``put_back``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..models import Generation, Status
from .steps import Params


@dataclass(slots=True)
class Attempt:
    """A claimed generation's run by ``worker_id`` in this process (``watching``) and what a ``fail`` or a
    ``complete_generation`` made of it meanwhile, from any thread or task of this process: ``ended`` pending
    (a retry), failed or completed, None while no such write of this attempt matched its row. A worker's
    handler that retried or failed its own job is known by it, which the row cannot tell once the attempt is
    over (a retry clears the row's worker, as ``requeue_expired`` does; ``fail_expired`` keeps it, as a
    handler's ``fail`` does), and one that returned leaving its job unfinished (no write noted)."""

    generation_id: str
    worker_id: str
    ended: Status | None = None


_ATTEMPTS: dict[str, list[Attempt]] = {}
"""The attempts being watched, by generation id (a few: one per worker running a job)."""
_ATTEMPTS_LOCK = threading.Lock()


@contextmanager
def watching(generation_id: str, worker_id: str) -> Iterator[Attempt]:
    """Watch ``worker_id``'s attempt at ``generation_id`` inside the block: a ``fail`` or
    ``complete_generation`` of this process that moves the row from processing (``worker_id``'s, or with no
    worker id given) is noted in the ``Attempt`` (the first one: a later write is another attempt's). Noted
    as the write is made, in its transaction: one inside a ``Store.transaction`` rolled back afterwards is
    noted all the same."""
    attempt = Attempt(generation_id, worker_id)
    with _ATTEMPTS_LOCK:
        _ATTEMPTS.setdefault(generation_id, []).append(attempt)
    try:
        yield attempt
    finally:
        with _ATTEMPTS_LOCK:
            watched = _ATTEMPTS[generation_id]
            watched.remove(attempt)
            if not watched:
                del _ATTEMPTS[generation_id]


def put_back(store: Any, generation: Generation, message: str, worker_id: str | None = None) -> Any:
    """Put claimed ``generation`` back in the queue, ``message`` (naming the interrupt) as its error: ``fail``
    with ``max_attempts=attempts + 1``, pending at once whatever attempts remain (its attempt counted, as for
    an expired lease), only while it is processing for ``worker_id`` (None: the worker that claimed it); one
    completed, cancelled or taken over meanwhile is not touched (``InvalidTransition``/``NotFound``). What
    ``store.fail`` returns, an ``AsyncStore``'s to be awaited: the one copy of a ``Worker``'s put-back and an
    ``AsyncWorker``'s, an interrupted batch export's and a cancelled async claim's; each caller decides what
    an error of it means."""
    owner = worker_id if worker_id is not None else generation.worker_id
    return store.fail(generation.id, message, max_attempts=generation.attempts + 1, worker_id=owner)


def _ended(row: Params, status: Status) -> None:
    """Note that ``fail`` or ``complete_generation`` moved ``row`` (its id and worker id) to ``status``, in
    the watched attempts it ended (``watching``)."""
    if not _ATTEMPTS:  # nothing watched: a write outside a worker's handler
        return
    with _ATTEMPTS_LOCK:
        for attempt in _ATTEMPTS.get(row["id"], ()):
            if attempt.ended is None and row["worker_id"] in (None, attempt.worker_id):
                attempt.ended = status

"""The queue seen whole: its depth by owner key and priority, owner keys' limits, dead letters and replay.

A dead letter is a failed generation: one that used its attempts, or was failed without a retry. ``replay``
puts one back in the queue (failed → pending, attempts reset), ``replay_all`` every one, each in one
statement.
"""

from __future__ import annotations

import json
from datetime import datetime

from .. import validate
from ..ids import check_id
from ..models import Generation, Page, QueueDepth, QueueLevel, Status, columns, to_datetime
from .jobs import MAX_OWNER_LIMIT, _explain
from .reads import GENERATION, list_generations
from .steps import NOW, Call, Steps, reader, writer

LEVELS = columns("owner_key", "priority", "pending", "deferred", "oldest_created_at", "ready_since")
RUNNING = columns("owner_key", "running")
LIMITS = columns("owner_key", "max_running")
IDS = columns("id")
_LIMITS_PAGE = 1_000


@writer
def set_owner_limit(owner_key: str, max_running: int | None) -> Steps[None]:
    """Limit how many generations of ``owner_key`` may be processing at once (0: none, a paused key), over
    the claim's ``owner_limit``; None: back to the claim's ``owner_limit``. Claims check it atomically."""
    key = validate.name(owner_key, "owner_key")
    if max_running is None:
        yield Call("delete_owner_limit", {"owner_key": key})
        return
    limit = validate.integer(max_running, "max_running", 0, MAX_OWNER_LIMIT)
    yield Call("set_owner_limit", {"owner_key": key, "max_running": limit})


@reader
def get_owner_limits() -> Steps[dict[str, int]]:
    """Every owner key with a limit of its own, and that limit."""
    found: dict[str, int] = {}
    after = ""
    while True:
        rows = yield Call("owner_limits_after", {"after_key": after, "limit": _LIMITS_PAGE}, LIMITS)
        found.update(rows)
        if len(rows) < _LIMITS_PAGE:
            return found
        after = rows[-1][0]


def _key(stored: str) -> str | None:
    return stored or None  # '' stands for no owner key in the lane queries


@reader
def queue_depth() -> Steps[QueueDepth]:
    """Pending generations by owner key and priority (how many, how many wait for their ``run_after``, the
    oldest, since when the longest-waiting ready one has been ready), and processing ones by owner key: one
    pass over the pending index and the processing index."""
    now: datetime = yield NOW
    levels = yield Call("queue_depth", {"now": now}, LEVELS)
    running = yield Call("queue_running", {}, RUNNING)
    return QueueDepth(
        at=now,
        levels=[
            QueueLevel(
                _key(key),
                priority,
                pending,
                deferred or 0,
                to_datetime(oldest),
                None if ready is None else to_datetime(ready),
            )
            for key, priority, pending, deferred, oldest, ready in levels
        ],
        running={_key(key): count for key, count in running},
    )


@reader
def list_dead_letters(*, limit: int = 50, cursor: str | None = None) -> Steps[Page]:
    """A page of dead letters (failed generations), newest first; ``next_cursor`` continues it (keyset)."""
    page: Page = yield from list_generations.steps(status=Status.FAILED, limit=limit, cursor=cursor)
    return page


@writer
def replay(generation_id: str) -> Steps[Generation]:
    """Put a dead letter back in the queue: failed → pending, its attempts reset to 0 and no ``run_after``,
    in one statement. Returns the row as it is now. Its last error message stays until it completes.

    Its renditions' rows go in the same transaction (``_forget_renditions``)."""
    gid = check_id(generation_id)
    changed = yield Call("replay_generation", {"id": gid})
    if changed != 1:
        raise (yield from _explain(gid, "replayed"))
    yield from _forget_renditions([gid])
    row: Generation = yield Call("get_generation", {"id": gid}, GENERATION)
    return row


@writer
def replay_all() -> Steps[list[str]]:
    """Put every dead letter back in the queue at once (one statement; their renditions' rows go in a second,
    ``_forget_renditions``); returns their ids, sorted."""
    rows = yield Call("replay_failed", {}, IDS)
    ids = sorted(row[0] for row in rows)
    yield from _forget_renditions(ids)
    return ids


def _forget_renditions(ids: list[str]) -> Steps[None]:
    """Delete the renditions' rows of these dead letters, being replayed: a completed generation that
    reconcile marked failed (its master missing or damaged) kept them, so once its worker exported a new
    master, ``render_generation`` returned (and delivery served) the renditions of the lost one as its own.
    Their files stay, marked with their generation: the next render of a request replaces its file, and
    reconcile takes away one no render makes again (an orphan once the generation completes)."""
    if ids:
        yield Call("delete_renditions_of_generations", {"ids": json.dumps(ids)})

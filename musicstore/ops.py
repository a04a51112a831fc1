"""Every store operation, written once, as a generator that yields what it needs from the database.

An operation yields ``Call(name, params)`` for a named query (and receives its result) or ``NOW`` (and
receives the store clock's current time); it returns its result. The sync and async runners in
``musicstore.runner`` drive the same generators, so there is one copy of each operation's logic.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar

from . import validate
from .errors import ConfirmationRequired, DatabaseError, InvalidInput, InvalidTransition, LeaseLost, NotFound
from .ids import check_id, new_id
from .models import Generation, Page, Prompt, Requeued, Stats, Status, prompt_digest, to_datetime, to_micros

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_LEASE_SECONDS = 300.0
"""How long a claim is held without a heartbeat before ``requeue_expired`` may take it back."""
DEFAULT_MAX_ATTEMPTS = 3
"""How many claims a generation gets before a failure (or expired lease) is final."""
RESET_CONFIRMATION = "delete everything"
"""The exact ``confirm=`` argument ``reset_database`` requires."""

_CURSOR_END = (datetime.max.replace(tzinfo=UTC), "~")


@dataclass(frozen=True, slots=True)
class Call:
    """Run the named query from ``sql/`` with these parameters."""

    name: str
    params: dict[str, Any]


class _Now:
    __slots__ = ()


NOW = _Now()
"""Ask the runner for the current time (the store's clock, which tests may replace)."""

Step = Call | _Now
Steps = Generator[Step, Any, T]


class Operation(Generic[P, T]):
    """A store operation: its steps, and whether it writes (a write runs in ``BEGIN IMMEDIATE``)."""

    def __init__(self, steps: Callable[P, Steps[T]], *, writes: bool) -> None:
        self.steps = steps
        self.writes = writes
        self.__name__ = steps.__name__
        self.__doc__ = steps.__doc__


def writer(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    return Operation(steps, writes=True)


def reader(steps: Callable[P, Steps[T]]) -> Operation[P, T]:
    return Operation(steps, writes=False)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


# --- creating and reading -------------------------------------------------------------------------------


@writer
def create_generation(
    prompt: str,
    *,
    model_name: str,
    duration_seconds: float,
    sample_rate: int = 32_000,
    channels: int = 2,
    model_version: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Steps[Generation]:
    """Enqueue a pending generation and count its prompt's use, in one transaction."""
    encoded = validate.metadata({} if metadata is None else metadata)
    fields: dict[str, Any] = {
        "id": new_id(),
        "prompt": validate.prompt(prompt),
        "model_name": validate.name(model_name, "model_name"),
        "model_version": validate.name(model_version, "model_version", optional=True),
        "duration_seconds": validate.duration(duration_seconds),
        "sample_rate": validate.sample_rate(sample_rate),
        "channels": validate.channels(channels),
        "created_at": (yield NOW),
    }
    row = Generation(**fields, status=Status.PENDING, metadata=dict(metadata or {}))
    digest, _ = yield from _track_prompt(row.prompt, row.created_at)
    yield Call("insert_generation", {**fields, "metadata": encoded, "prompt_digest": digest})
    return row


@reader
def get_generation(generation_id: str) -> Steps[Generation | None]:
    """The generation with this id, or None if there is none."""
    row = yield Call("get_generation", {"id": check_id(generation_id)})
    return None if row is None else Generation.from_row(row)


def _encode_cursor(item: Generation) -> str:
    raw = f"{to_micros(item.created_at)}:{item.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str]:
    if cursor is None:
        return _CURSOR_END
    if not isinstance(cursor, str) or len(cursor) > 200:
        raise InvalidInput(
            f"cursor must be None or a str this store handed out (Page.next_cursor), got {cursor!r:.80}"
        )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, generation_id = raw.split(":", 1)
        return to_datetime(int(micros)), check_id(generation_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidInput(
            f"cursor {cursor!r} is not one this store handed out (use Page.next_cursor)"
        ) from None


@reader
def list_generations(
    *,
    status: Status | str | None = None,
    model_name: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Steps[Page]:
    """A page of generations, newest first, optionally of one status and/or model.

    Pass the previous page's ``next_cursor`` to continue (keyset paging: constant time at any depth);
    ``offset`` skips rows after the cursor and costs time proportional to its size.
    """
    limit, offset = validate.page(limit, offset)
    before_created_at, before_id = _decode_cursor(cursor)
    params: dict[str, Any] = {
        "before_created_at": before_created_at,
        "before_id": before_id,
        "limit": limit,
        "offset": offset,
    }
    name = "list_generations"
    if status is not None:
        params["status"] = validate.status(status).value
        name += "_by_status"
    if model_name is not None:
        params["model_name"] = validate.name(model_name, "model_name")
        name += "_and_model" if status is not None else "_by_model"
    rows = yield Call(name, params)
    items = [Generation.from_row(row) for row in rows]
    next_cursor = _encode_cursor(items[-1]) if len(items) == limit else None
    return Page(items=items, next_cursor=next_cursor)


@reader
def get_all_generations(
    *,
    status: Status | str | None = None,
    model_name: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> Steps[list[Generation]]:
    """The seed's spelling of ``list_generations``: the page's items, newest first."""
    page = yield from list_generations.steps(
        status=status, model_name=model_name, limit=limit, offset=offset, cursor=cursor
    )
    return page.items


@reader
def get_pending_generations(limit: int = 10) -> Steps[list[Generation]]:
    """The queue, oldest first: the generations ``claim_next`` would take, in its order."""
    rows = yield Call("list_pending", {"limit": validate.integer(limit, "limit", 1, validate.MAX_PAGE)})
    return [Generation.from_row(row) for row in rows]


@reader
def count_generations(*, status: Status | str | None = None, model_name: str | None = None) -> Steps[int]:
    """How many generations there are, optionally of one status and/or model."""
    if model_name is None:
        stats = yield from get_database_stats.steps()
        return stats.total if status is None else stats.by_status[validate.status(status)]
    model = validate.name(model_name, "model_name")
    if status is None:
        row = yield Call("count_by_model", {"model_name": model})
    else:
        row = yield Call(
            "count_by_status_and_model", {"status": validate.status(status).value, "model_name": model}
        )
    return int(row["n"])


@reader
def get_database_stats() -> Steps[Stats]:
    """Counts by status, bytes, generation time and prompt usage, from running totals."""
    rows = yield Call("totals", {})
    return Stats.from_rows(rows)


# --- the worker's side: claim, heartbeat, complete, fail ----------------------------------------------


@writer
def claim_next(worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Steps[Generation | None]:
    """Take the oldest pending generation for ``worker_id`` (pending → processing), or None if none waits."""
    worker = validate.name(worker_id, "worker_id")
    lease = _seconds(validate.seconds(lease_seconds, "lease_seconds"))
    now = yield NOW
    row = yield Call("claim_next", {"worker_id": worker, "now": now, "lease_expires_at": now + lease})
    return None if row is None else Generation.from_row(row)


@writer
def claim_batch(
    worker_id: str, count: int, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> Steps[list[Generation]]:
    """Take up to ``count`` of the oldest pending generations at once, oldest first."""
    worker = validate.name(worker_id, "worker_id")
    limit = validate.integer(count, "count", 1, validate.MAX_PAGE)
    lease = _seconds(validate.seconds(lease_seconds, "lease_seconds"))
    now = yield NOW
    rows = yield Call(
        "claim_batch", {"worker_id": worker, "now": now, "lease_expires_at": now + lease, "limit": limit}
    )
    return sorted((Generation.from_row(row) for row in rows), key=lambda g: (g.created_at, g.id))


def _explain(generation_id: str, wanted: str, worker_id: str | None = None) -> Steps[Exception]:
    """Why a conditional UPDATE matched no row: the error to raise."""
    row = yield Call("get_generation", {"id": generation_id})
    if row is None:
        return NotFound(f"no generation with id {generation_id}")
    current, owner = row["status"], row["worker_id"]
    if worker_id is not None and (current != Status.PROCESSING or owner != worker_id):
        holder = f"processed by worker {owner!r}" if current == Status.PROCESSING else current
        return LeaseLost(
            f"generation {generation_id} is {holder}: worker {worker_id!r} no longer owns it (cancelled, or "
            "its lease expired and it was requeued); stop work on it and drop the result",
            current=current,
        )
    return InvalidTransition(
        f"generation {generation_id} is {current}; it cannot be {wanted} from that status", current=current
    )


@writer
def heartbeat(
    generation_id: str, worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> Steps[datetime]:
    """Extend the lease of a generation ``worker_id`` is processing; returns the new expiry."""
    gid = check_id(generation_id)
    worker = validate.name(worker_id, "worker_id")
    lease = _seconds(validate.seconds(lease_seconds, "lease_seconds"))
    expires: datetime = (yield NOW) + lease
    changed = yield Call("heartbeat", {"id": gid, "worker_id": worker, "lease_expires_at": expires})
    if changed != 1:
        raise (yield from _explain(gid, "given a heartbeat", worker))
    return expires


@writer
def complete_generation(
    generation_id: str,
    *,
    file_path: str,
    file_size_bytes: int,
    generation_time_seconds: float | None = None,
    metadata: dict[str, Any] | None = None,
    worker_id: str | None = None,
) -> Steps[Generation]:
    """processing → completed, recording the file; ``metadata`` is merged into the row's (top-level keys).

    ``generation_time_seconds`` defaults to the time since the claim. With ``worker_id`` only that worker's
    claim can complete (a worker whose lease was taken over gets LeaseLost).
    """
    gid = check_id(generation_id)
    path = validate.relative_path(file_path)
    size = validate.file_size(file_size_bytes)
    worker = validate.name(worker_id, "worker_id", optional=True)
    if metadata is not None:
        validate.metadata(metadata)
    if generation_time_seconds is not None:
        generation_time_seconds = validate.seconds(
            generation_time_seconds, "generation_time_seconds", positive=False
        )
    now: datetime = yield NOW
    row = yield Call("get_generation_for_update", {"id": gid})
    current = None if row is None else Generation.from_row(row)
    if current is None or current.status is not Status.PROCESSING:
        raise (yield from _explain(gid, "completed", worker))
    if generation_time_seconds is None:
        started = current.started_at or now
        seconds = max((now - started).total_seconds(), 0.0)
    else:
        seconds = generation_time_seconds
    merged = {**current.metadata, **(metadata or {})}
    changed = yield Call(
        "complete_generation",
        {
            "id": gid,
            "worker_id": worker,
            "now": now,
            "file_path": path,
            "file_size_bytes": size,
            "generation_time_seconds": seconds,
            "metadata": validate.metadata(merged, checked=True),  # both halves are checked already
        },
    )
    if changed != 1:
        raise (yield from _explain(gid, "completed", worker))
    current.status, current.completed_at, current.lease_expires_at = Status.COMPLETED, now, None
    current.file_path, current.file_size_bytes, current.generation_time_seconds = path, size, seconds
    current.metadata, current.error_message = merged, None
    return current  # the row as updated: this snapshot was read in the same transaction


@writer
def fail(
    generation_id: str,
    error_message: str,
    *,
    retry: bool = True,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    worker_id: str | None = None,
) -> Steps[Status]:
    """processing → pending when ``retry`` and attempts < ``max_attempts``, else → failed.

    Returns the new status. The error message is kept on the row either way.
    """
    gid = check_id(generation_id)
    message = validate.message(error_message, "error_message")
    retry = validate.flag(retry, "retry")
    attempts = validate.integer(max_attempts, "max_attempts", 1)
    worker = validate.name(worker_id, "worker_id", optional=True)
    params = {"id": gid, "worker_id": worker, "error_message": message}
    if retry:
        changed = yield Call("retry_generation", {**params, "max_attempts": attempts})
        if changed == 1:
            return Status.PENDING
    changed = yield Call("fail_generation", {**params, "now": (yield NOW)})
    if changed != 1:
        raise (yield from _explain(gid, "failed", worker))
    return Status.FAILED


@writer
def cancel(generation_id: str, reason: str | None = None) -> Steps[None]:
    """pending|processing → cancelled. A worker still running it finds out at its next heartbeat."""
    gid = check_id(generation_id)
    why = validate.message(reason, "reason", optional=True)
    changed = yield Call("cancel_generation", {"id": gid, "now": (yield NOW), "reason": why})
    if changed != 1:
        raise (yield from _explain(gid, "cancelled"))


@writer
def requeue_expired(*, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Steps[Requeued]:
    """Take back every processing generation whose lease expired: → pending, or → failed if none is left."""
    params = {"now": (yield NOW), "max_attempts": validate.integer(max_attempts, "max_attempts", 1)}
    requeued = yield Call("requeue_expired", params)
    failed = yield Call("fail_expired", params)
    return Requeued(requeued=sorted(r["id"] for r in requeued), failed=sorted(r["id"] for r in failed))


@writer
def update_generation_status(
    generation_id: str, status: Status | str, *, error_message: str | None = None
) -> Steps[None]:
    """Move a generation to ``status`` along the status machine (the seed's generic transition).

    pending → processing is ``claim_next``'s job and completed needs a file (``complete_generation``),
    so this accepts cancelled, failed (no retry) and pending (a processing generation put back).
    """
    target = validate.status(status)
    validate.message(error_message, "error_message", optional=True)
    if target is Status.CANCELLED:
        yield from cancel.steps(generation_id, error_message)
    elif target is Status.FAILED:
        yield from fail.steps(generation_id, error_message or "failed", retry=False)
    elif target is Status.PENDING:
        yield from fail.steps(generation_id, error_message or "requeued", retry=True, max_attempts=1 << 30)
    else:
        raise InvalidTransition(
            f"use {'claim_next' if target is Status.PROCESSING else 'complete_generation'} to make a "
            f"generation {target}: it needs a worker id and lease, or a file"
        )


@writer
def delete_generation(generation_id: str) -> Steps[None]:
    """Delete a generation's row (not its file; see cleanup). A processing one must be cancelled first."""
    gid = check_id(generation_id)
    deleted = yield Call("delete_generation", {"id": gid})
    if deleted != 1:
        raise (yield from _explain(gid, "deleted"))


@writer
def reset_database(*, confirm: str) -> Steps[None]:
    """Delete every generation and prompt. ``confirm`` must be exactly ``RESET_CONFIRMATION``."""
    if confirm != RESET_CONFIRMATION:
        raise ConfirmationRequired(
            f"reset_database deletes every generation and prompt; pass confirm={RESET_CONFIRMATION!r}"
        )
    yield Call("delete_all_generations", {})
    yield Call("delete_all_prompts", {})


@reader
def applied_migrations() -> Steps[set[str]]:
    """The ids of the yoyo migrations applied to this database."""
    rows = yield Call("applied_migrations", {})
    return {row["migration_id"] for row in rows}


# --- prompts -------------------------------------------------------------------------------------------


@writer
def track_prompt_usage(prompt: str) -> Steps[Prompt]:
    """Count one use of a prompt (inserting it on first use); ``create_generation`` does this itself."""
    _, row = yield from _track_prompt(validate.prompt(prompt), (yield NOW))
    return Prompt.from_row(row)


def _digest_taken() -> DatabaseError:
    return DatabaseError(
        "the prompts table holds another text under this prompt's SHA-256 digest: a row was written "
        "outside musicstore with a wrong digest; fix or delete that row"
    )


def _track_prompt(text: str, now: datetime) -> Steps[tuple[bytes, Any]]:
    """Count one use of a validated prompt text: its digest (what generations reference) and its row."""
    digest = prompt_digest(text)
    row = yield Call("track_prompt", {"digest": digest, "text": text, "now": now})
    if row is None:  # the upsert updates only a row with the same text
        raise _digest_taken()
    return digest, row


@reader
def get_prompt_by_text(prompt: str) -> Steps[Prompt | None]:
    """The prompt with exactly this text, or None."""
    text = validate.prompt(prompt)
    row = yield Call("get_prompt_by_text", {"digest": prompt_digest(text), "text": text})
    return None if row is None else Prompt.from_row(row)


@reader
def get_most_used_prompts(limit: int = 10) -> Steps[list[Prompt]]:
    """The most used prompts, most used first."""
    rows = yield Call("most_used_prompts", {"limit": validate.integer(limit, "limit", 1, validate.MAX_PAGE)})
    return [Prompt.from_row(row) for row in rows]


# --- moving rows between stores --------------------------------------------------------------------------


@reader
def prompts_after(after_id: int, limit: int) -> Steps[list[Prompt]]:
    """Prompts with ids above ``after_id``, in id order (for paging through a whole store)."""
    rows = yield Call("prompts_after", {"after_id": after_id, "limit": limit})
    return [Prompt.from_row(row) for row in rows]


@reader
def generations_after(after_id: str, limit: int) -> Steps[list[Generation]]:
    """Generations with ids above ``after_id``, in id order."""
    rows = yield Call("generations_after", {"after_id": after_id, "limit": limit})
    return [Generation.from_row(row) for row in rows]


@writer
def import_rows(prompts: list[Prompt], generations: list[Generation]) -> Steps[int]:
    """Insert rows read from another store as they are (idempotent); returns how many generations were new."""
    for prompt in prompts:
        changed = yield Call(
            "import_prompt",
            {
                "digest": prompt_digest(prompt.text),
                "text": prompt.text,
                "used_count": prompt.used_count,
                "first_used_at": prompt.first_used_at,
                "last_used_at": prompt.last_used_at,
            },
        )
        if changed != 1:
            raise _digest_taken()
    inserted = 0
    for generation in generations:
        fields = {name: getattr(generation, name) for name in Generation.__dataclass_fields__}
        fields["status"] = generation.status.value
        fields["metadata"] = validate.metadata(generation.metadata)
        fields["prompt_digest"] = prompt_digest(generation.prompt)
        if generation.file_path is not None:
            validate.relative_path(generation.file_path)  # a file must stay under the output root
        inserted += yield Call("import_generation", fields)
    return inserted

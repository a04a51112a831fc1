"""A job's life: create, claim, heartbeat, complete, fail, cancel, requeue, delete, reset.

Every status change is one conditional UPDATE whose row count decides it; when it matches no row,
``_explain`` reads the row to say why (not found, another status, or another worker's lease).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .. import validate
from ..errors import Cancelled, ConfirmationRequired, InvalidTransition, LeaseLost, NotFound
from ..ids import check_id, new_id
from ..models import Generation, Requeued, Status, columns
from .prompts import track_prompt
from .reads import GENERATION
from .steps import NOW, Call, Steps, writer

DEFAULT_LEASE_SECONDS = 300.0
"""How long a claim is held without a heartbeat before ``requeue_expired`` may take it back."""
DEFAULT_MAX_ATTEMPTS = 3
"""How many claims a generation gets before a failure (or expired lease) is final."""
RESET_CONFIRMATION = "delete everything"
"""The exact ``confirm=`` argument ``reset_database`` requires."""
TRACKED = columns("id")
"""What ``create_generation`` reads of the prompt row it counted a use of: that there is one."""


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
    encoded = "{}" if metadata is None else validate.metadata(metadata)
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
    digest, _ = yield from track_prompt(row.prompt, row.created_at, TRACKED)
    yield Call("insert_generation", {**fields, "metadata": encoded, "prompt_digest": digest})
    return row


@writer
def claim_next(worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Steps[Generation | None]:
    """Take the oldest pending generation for ``worker_id`` (pending → processing), or None if none waits."""
    worker = validate.name(worker_id, "worker_id")
    lease = timedelta(0, validate.seconds(lease_seconds, "lease_seconds"))
    now = yield NOW
    params = {"worker_id": worker, "now": now, "lease_expires_at": now + lease}
    claimed: Generation | None = yield Call("claim_next", params, GENERATION)
    return claimed


@writer
def claim_batch(
    worker_id: str, count: int, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> Steps[list[Generation]]:
    """Take up to ``count`` of the oldest pending generations at once, oldest first."""
    worker = validate.name(worker_id, "worker_id")
    limit = validate.integer(count, "count", 1, validate.MAX_PAGE)
    lease = timedelta(0, validate.seconds(lease_seconds, "lease_seconds"))
    now = yield NOW
    params = {"worker_id": worker, "now": now, "lease_expires_at": now + lease, "limit": limit}
    claimed: list[Generation] = yield Call("claim_batch", params, GENERATION)
    return sorted(claimed, key=lambda g: (g.created_at, g.id))


def _explain(generation_id: str, wanted: str, worker_id: str | None = None) -> Steps[Exception]:
    """Why a conditional UPDATE matched no row: the error to raise."""
    row: Generation | None = yield Call("get_generation", {"id": generation_id}, GENERATION)
    if row is None:
        return NotFound(f"no generation with id {generation_id}")
    current, owner = row.status, row.worker_id
    if worker_id is not None and (current != Status.PROCESSING or owner != worker_id):
        holder = f"processed by worker {owner!r}" if current == Status.PROCESSING else current
        if current == Status.CANCELLED and owner == worker_id:
            return Cancelled(
                f"generation {generation_id} was cancelled while worker {worker_id!r} ran it; stop work on "
                "it and drop the result",
                current=current,
            )
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
    lease = timedelta(0, validate.seconds(lease_seconds, "lease_seconds"))
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
    current: Generation | None = yield Call("get_generation_for_update", {"id": gid}, GENERATION)
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
    """Move a generation to ``status`` along the status machine (the 0.1 compatibility transition).

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

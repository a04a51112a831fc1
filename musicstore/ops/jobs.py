"""A job's life: create, claim, heartbeat, complete, fail, cancel, requeue, delete, reset.

Every status change is one conditional UPDATE whose row count decides it; when it matches no row,
``_explain`` reads the row to say why (not found, another status, or another worker's lease).

The claim is in ``musicstore.ops.claims``, the creation in ``musicstore.ops.creation``, what they share with
the rest (a lease's length and end) in ``musicstore.ops.leases``: this module re-exports their names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from .. import validate
from ..errors import Cancelled, ConfirmationRequired, InvalidInput, InvalidTransition, LeaseLost, NotFound
from ..ids import check_id
from ..models import Generation, Requeued, RetryPolicy, Status
from .attempts import Attempt, _ended, watching
from .claims import CANDIDATES, MAX_OWNER_LIMIT, _fast, _Undecided, claim_batch, claim_epoch, claim_next
from .creation import create_generation
from .leases import DEFAULT_LEASE_SECONDS, Stamp, _backoff_fits, _later, lease_of
from .reads import GENERATION
from .steps import EXPLAIN, MORE, Call, Explain, More, Params, Steps, reader, writer, writes_fixed

DEFAULT_MAX_ATTEMPTS = 3
"""How many claims a generation gets before a failure (or expired lease) is final."""
RESET_CONFIRMATION = "delete everything"
"""The exact ``confirm=`` argument ``reset_database`` requires."""
NO_RETRY_DELAY = RetryPolicy(base_seconds=0.0)
"""The default of ``fail`` and ``requeue_expired``: a retried job is claimable at once."""
_NO_DELAY = {
    "base_seconds": NO_RETRY_DELAY.base_seconds,
    "cap_seconds": NO_RETRY_DELAY.cap_seconds,
    "jitter": NO_RETRY_DELAY.jitter,
}
"""``NO_RETRY_DELAY``'s query parameters (only ever spread into a call's parameters, never changed)."""


def _ids(names: Sequence[str]) -> Callable[[Sequence[Any]], Any]:
    """A row reader of the ``id`` column alone (its value, not a one-item row)."""
    return itemgetter(list(names).index("id"))


_LOST_BECAUSE = {
    Status.PENDING: (
        "it waits to be claimed: its lease expired and it was requeued, or it was retried or replayed, or"
        " this worker never claimed it"
    ),
    Status.PROCESSING: (
        "another worker claimed it: after its lease expired, a retry or a replay, or this worker never"
        " claimed it"
    ),
    Status.COMPLETED: "it was completed: by an earlier call, or by another worker after its lease expired",
    Status.FAILED: "it was failed: by an earlier call, or after its lease expired",
    Status.CANCELLED: "it was cancelled",
}
"""Why a worker no longer owns a generation, by the generation's status now (``LeaseLost``): each way it
could have come to it, the row keeping no trace of which."""


def _explain(generation_id: str, wanted: str, worker_id: str | None = None) -> Steps[Exception]:
    """Why a conditional UPDATE matched no row: the error to raise."""
    row: Generation | None = yield Call("get_generation", {"id": generation_id}, GENERATION)
    if row is None:
        return NotFound(f"no generation with id {generation_id}")
    current, owner = row.status, row.worker_id
    if worker_id is not None and (current != Status.PROCESSING or owner != worker_id):
        holder = f"processed by worker {owner!r}" if current == Status.PROCESSING else current
        if current == Status.CANCELLED and owner == worker_id:
            _ended({"id": generation_id, "worker_id": worker_id}, Status.CANCELLED)  # a handler may catch it
            return Cancelled(
                f"generation {generation_id} was cancelled while worker {worker_id!r} ran it; stop work on "
                "it and drop the result",
                current=current,
                owner=owner,
            )
        return LeaseLost(
            f"generation {generation_id} is {holder}: worker {worker_id!r} no longer owns it "
            f"({_LOST_BECAUSE[current]}); stop work on it and drop the result",
            current=current,
            owner=owner,
        )
    return InvalidTransition(
        f"generation {generation_id} is {current}; it cannot be {wanted} from that status", current=current
    )


def _heartbeat_params(
    now: datetime, stamp: Stamp, checked: tuple[str, str | None, timedelta]
) -> tuple[Params]:
    gid, worker, lease = checked
    return ({"id": gid, "worker_id": worker, "lease_expires_at": stamp(_later(now, lease, "a lease"))},)


def _heartbeat_finish(
    found: list[int], now: datetime, checked: tuple[str, str | None, timedelta]
) -> datetime | Explain:
    return now + checked[2] if found[0] == 1 else EXPLAIN


def _heartbeat_explain(gid: str, worker: str | None, lease: timedelta) -> Steps[Exception]:
    return _explain(gid, "given a heartbeat", worker)


@writes_fixed((("heartbeat", None),), _heartbeat_params, _heartbeat_finish, _heartbeat_explain, alone=True)
def heartbeat(
    generation_id: str, worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> tuple[str, str | None, timedelta]:
    """Extend the lease of a generation ``worker_id`` is processing; returns the new expiry."""
    return (
        check_id(generation_id),
        validate.name(worker_id, "worker_id"),
        lease_of(validate.seconds(lease_seconds, "lease_seconds")),
    )


@writer
def lock_for_completion(generation_id: str, *, worker_id: str | None = None) -> Steps[Generation]:
    """The processing row, locked until the transaction ends (``get_generation_for_update``: FOR UPDATE on
    PostgreSQL, where SQLite's write transaction already excludes the others), checked as
    ``complete_generation`` checks it, with the same errors (NotFound, InvalidTransition, LeaseLost,
    Cancelled); nothing written.

    ``musicstore.recording`` takes it in the transaction that completes the row (before a folder's rename,
    after an object store's put): the claim is checked and no other session can change the row meanwhile,
    while the completing UPDATE (whose triggers take their rows' locks: the session's shard of the totals,
    the owner key's lane) runs only once the file is in, just before the commit."""
    return (yield from _completable("get_generation_for_update", generation_id, worker_id))


@reader
def check_for_completion(generation_id: str, *, worker_id: str | None = None) -> Steps[Generation]:
    """``lock_for_completion``'s check as a read, locking nothing and sending no COMMIT: what an export to an
    object store asks before its upload, so that a claim already lost puts nothing (the locked check
    follows the upload, in the transaction that completes the row)."""
    return (yield from _completable("get_generation", generation_id, worker_id))


def _completable(query: str, generation_id: str, worker_id: str | None) -> Steps[Generation]:
    gid = check_id(generation_id)
    worker = validate.name(worker_id, "worker_id", optional=True)
    current: Generation | None = yield Call(query, {"id": gid}, GENERATION)
    if (
        current is None
        or current.status is not Status.PROCESSING
        or (worker is not None and current.worker_id != worker)
    ):
        raise (yield from _explain(gid, "completed", worker))
    return current


def _complete_params(
    now: datetime, stamp: Stamp, checked: tuple[str, str, int, str | None, Params | None, float | None]
) -> tuple[Params, Callable[[list[Any]], Params | None]]:
    gid, path, size, worker, metadata, given_seconds = checked

    def update(found: list[Any]) -> Params | None:
        """The UPDATE's parameters once the row is read (None: not processing, ``finish`` explains), and
        ``current`` made the row as it leaves it (returned once the UPDATE matched: read in the same
        transaction; never seen otherwise)."""
        current: Generation = found[0]
        if current.status is not Status.PROCESSING:
            return None
        if given_seconds is None:
            started = current.started_at or now
            seconds = max((now - started).total_seconds(), 0.0)
        else:
            seconds = given_seconds
        merged = {**current.metadata, **metadata} if metadata else current.metadata
        encoded = validate.metadata(merged, checked=True)  # both halves are checked already
        current.status, current.completed_at, current.lease_expires_at = Status.COMPLETED, now, None
        current.file_path, current.file_size_bytes, current.generation_time_seconds = path, size, seconds
        current.metadata = validate.stored_metadata(merged, encoded) if metadata else merged
        current.error_message = None
        return {
            "id": gid,
            "worker_id": worker,
            "now": stamp(now),
            "file_path": path,
            "file_size_bytes": size,
            "generation_time_seconds": seconds,
            "metadata": encoded,
        }

    return {"id": gid}, update


def _complete_finish(found: list[Any], now: datetime, checked: tuple[Any, ...]) -> Generation | Explain:
    if len(found) < 2 or found[1] != 1:  # no row, not processing, or (worker_id) another worker's claim
        return EXPLAIN
    _ended({"id": checked[0], "worker_id": checked[3]}, Status.COMPLETED)
    return found[0]  # type: ignore[no-any-return]


def _complete_explain(gid: str, path: str, size: int, worker: str | None, *_: Any) -> Steps[Exception]:
    return _explain(gid, "completed", worker)


@writes_fixed(
    (("get_generation_for_update", GENERATION), ("complete_generation", None)),
    _complete_params,
    _complete_finish,
    _complete_explain,
)
def complete_generation(
    generation_id: str,
    *,
    file_path: str,
    file_size_bytes: int,
    generation_time_seconds: float | None = None,
    metadata: dict[str, Any] | None = None,
    worker_id: str | None = None,
) -> tuple[str, str, int, str | None, Params | None, float | None]:
    """processing → completed, recording the file; ``metadata`` is merged into the row's (top-level keys).

    ``generation_time_seconds`` defaults to the time since the claim. With ``worker_id`` only that worker's
    claim can complete (a worker whose lease was taken over gets LeaseLost).
    """
    gid = check_id(generation_id)
    path = validate.relative_path(file_path)
    size = validate.file_size(file_size_bytes)
    worker = validate.name(worker_id, "worker_id", optional=True)
    if metadata is not None:
        metadata = validate.plain_metadata(metadata)  # encoded once, merged with the row's, after the read
    if generation_time_seconds is not None:
        generation_time_seconds = validate.seconds(
            generation_time_seconds, "generation_time_seconds", positive=False
        )
    return gid, path, size, worker, metadata, generation_time_seconds


def _retry_params(now: datetime, stamp: Stamp, checked: tuple[Params, Params, bool]) -> tuple[Params]:
    _backoff_fits(now, checked[1])
    return ({**checked[0], **checked[1], "now": stamp(now)},)


def _retry_finish(found: list[int], now: datetime, checked: tuple[Any, ...]) -> Status | More:
    if found[0] != 1:
        return MORE  # no attempt left (or not processing): fail it
    _ended(checked[0], Status.PENDING)
    return Status.PENDING


def _failed(now: datetime, row: Params, retried: Params, retry: bool) -> Steps[Status]:
    """processing → failed (``fail``'s second statement, or its only one without ``retry``)."""
    changed = yield Call("fail_generation", {**row, "now": now})
    if changed != 1:
        raise (yield from _explain(row["id"], "failed", row["worker_id"]))
    _ended(row, Status.FAILED)
    return Status.FAILED


def _fail_first(row: Params, retried: Params, retry: bool) -> Callable[[datetime], Steps[Status]] | None:
    """Without ``retry``: the failure alone (its only statement)."""
    return None if retry else functools.partial(_failed, row=row, retried=retried, retry=retry)


@writes_fixed(
    (("retry_generation", None),), _retry_params, _retry_finish, first=_fail_first, more=_failed, alone=True
)
def fail(
    generation_id: str,
    error_message: str,
    *,
    retry: bool = True,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    worker_id: str | None = None,
    backoff: RetryPolicy | None = None,
) -> tuple[Params, Params, bool]:
    """processing → pending when ``retry`` and attempts < ``max_attempts``, else → failed (a dead letter).

    Returns the new status. The error message is kept on the row either way. ``backoff``: when the retried
    generation may be claimed again (``RetryPolicy``: exponential in its attempts, with jitter); None: at
    once.
    """
    gid = check_id(generation_id)
    message = validate.message(error_message, "error_message")
    retry = validate.flag(retry, "retry")
    attempts = validate.integer(max_attempts, "max_attempts", 1)
    worker = validate.name(worker_id, "worker_id", optional=True)
    retried = {"max_attempts": attempts, **_backoff(backoff)}
    return {"id": gid, "worker_id": worker, "error_message": message}, retried, retry


def _cancel_params(now: datetime, stamp: Stamp, checked: tuple[str, str | None]) -> tuple[Params]:
    return ({"id": checked[0], "now": stamp(now), "reason": checked[1]},)


def _cancel_finish(found: list[int], now: datetime, checked: tuple[str, str | None]) -> Explain | None:
    return None if found[0] == 1 else EXPLAIN


def _cancel_explain(gid: str, why: str | None) -> Steps[Exception]:
    return _explain(gid, "cancelled")


@writes_fixed((("cancel_generation", None),), _cancel_params, _cancel_finish, _cancel_explain, alone=True)
def cancel(generation_id: str, reason: str | None = None) -> tuple[str, str | None]:
    """pending|processing → cancelled. A worker still running it finds out at its next heartbeat."""
    return check_id(generation_id), validate.message(reason, "reason", optional=True)


def _backoff(policy: RetryPolicy | None) -> dict[str, float]:
    if policy is None:
        return _NO_DELAY
    if not isinstance(policy, RetryPolicy):
        raise InvalidInput(f"backoff must be a RetryPolicy or None, got {type(policy).__name__}")
    return {"base_seconds": policy.base_seconds, "cap_seconds": policy.cap_seconds, "jitter": policy.jitter}


def _requeue_params(
    now: datetime, stamp: Stamp, checked: tuple[int, dict[str, float]]
) -> tuple[Params, Params]:
    _backoff_fits(now, checked[1])
    params = {
        "now": stamp(now),
        "max_attempts": checked[0],
        **checked[1],
    }  # one dict for both: fail_expired's are in it
    return params, params


def _requeue_finish(found: list[list[str]], now: datetime, checked: tuple[Any, ...]) -> Requeued:
    requeued, failed = found
    requeued.sort()
    failed.sort()
    return Requeued(requeued, failed)


@writes_fixed((("requeue_expired", _ids), ("fail_expired", _ids)), _requeue_params, _requeue_finish)
def requeue_expired(
    *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, backoff: RetryPolicy | None = None
) -> tuple[int, dict[str, float]]:
    """Take back every processing generation whose lease expired: → pending (claimable after ``backoff``,
    as ``fail``'s), or → failed if none is left."""
    delay = _NO_DELAY if backoff is None else _backoff(backoff)
    return validate.integer(max_attempts, "max_attempts", 1), delay


@writer
def update_generation_status(
    generation_id: str, status: Status | str, *, error_message: str | None = None
) -> Steps[None]:
    """Move a generation to ``status`` along the status machine (the 0.1 compatibility transition).

    pending → processing is ``claim_next``'s job and completed needs a file (``complete_generation``),
    so this accepts cancelled, failed (no retry) and pending (a processing generation put back); for the
    other two it raises InvalidTransition (with ``.current``), or NotFound for an unknown id.
    """
    gid = check_id(generation_id)
    target = validate.status(status)
    validate.message(error_message, "error_message", optional=True)
    if target is Status.CANCELLED:
        yield from cancel.steps(gid, error_message)
    elif target is Status.FAILED:
        yield from fail.steps(gid, error_message or "failed", retry=False)
    elif target is Status.PENDING:
        try:
            yield from fail.steps(gid, error_message or "requeued", retry=True, max_attempts=1 << 30)
        except InvalidTransition as refused:  # fail's words ("cannot be failed") are not the caller's
            if type(refused) is not InvalidTransition:
                raise
            raise InvalidTransition(
                f"generation {gid} is {refused.current}; only a processing generation is put back to pending",
                current=refused.current,
            ) from None
    else:
        row: Generation | None = yield Call("get_generation", {"id": gid}, GENERATION)
        if row is None:
            raise NotFound(f"no generation with id {gid}")
        raise InvalidTransition(
            f"generation {gid} is {row.status}; use "
            f"{'claim_next' if target is Status.PROCESSING else 'complete_generation'} to make a generation "
            f"{target}: it needs a worker id and lease, or a file",
            current=row.status,
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
    """Delete every generation and prompt, and the lanes kept from them (owner limits stay). ``confirm`` must
    be exactly ``RESET_CONFIRMATION``."""
    if confirm != RESET_CONFIRMATION:
        raise ConfirmationRequired(
            f"reset_database deletes every generation and prompt; pass confirm={RESET_CONFIRMATION!r}"
        )
    yield Call("delete_all_generations", {})
    yield Call("delete_all_lanes", {})
    yield Call("delete_all_prompts", {})


__all__ = [  # with the names of the claim, the creation and the leases, which live beside this module
    "CANDIDATES",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "MAX_OWNER_LIMIT",
    "NO_RETRY_DELAY",
    "RESET_CONFIRMATION",
    "Attempt",
    "_Undecided",
    "_explain",
    "_fast",
    "_later",
    "cancel",
    "claim_batch",
    "claim_epoch",
    "claim_next",
    "complete_generation",
    "create_generation",
    "delete_generation",
    "fail",
    "heartbeat",
    "lease_of",
    "requeue_expired",
    "reset_database",
    "update_generation_status",
    "watching",
]

"""What the worker loop (``musicstore.worker``) checks and says: a failed job's message (:func:`failure`,
re-exported), a handler's result its loop cannot run, ``claim_options``, and whether a handler is an ``async
def`` (the signals ``handle_signals`` catches are ``signals``')."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Mapping
from contextlib import suppress
from typing import Any

from .. import validate
from ..errors import InvalidInput, shown
from ..masking import redact
from ..models import Generation
from ..ops import DEFAULT_LEASE_SECONDS
from ..ops.jobs import MAX_OWNER_LIMIT
from ..store import Store

MAX_ERROR_CHARS = 1000
"""How much of a handler's error a failed job keeps (``type: message``)."""


def failure(exc: BaseException) -> str:
    """The error message a job failed by ``exc`` keeps: text the databases store (a NUL or a lone surrogate
    in the message, as from undecodable bytes, is written as its escape), its known secrets masked, at most
    ``MAX_ERROR_CHARS`` (masked before it is cut: a secret the cut went through is no longer one to find)."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # a message that cannot be made: the job is failed with its type
        text = f"{type(exc).__name__}: (its message could not be read)"
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return redact(text)[:MAX_ERROR_CHARS]


_YIELDS = "its body never ran: a handler runs the job and returns, it does not yield"


def _misfit(outcome: object, awaited: bool) -> str | None:
    """The error of a handler's result its loop (``awaited``: ``AsyncWorker``'s) cannot use (a job failed
    with it), a coroutine or generator closed (its work never ran); None for a result it can."""
    if inspect.isgenerator(outcome) or inspect.isasyncgen(outcome):  # a lambda around a generator function
        if inspect.isgenerator(outcome):
            outcome.close()
        return f"the handler returned a generator ({type(outcome).__name__}): {_YIELDS}"
    if inspect.isawaitable(outcome) == awaited:
        return None
    if awaited:  # a plain function: it ran, and maybe finished the job
        runner, what = "Worker on a Store", "no awaitable"
    else:  # e.g. a lambda around an async def: the work never ran
        runner, what = "AsyncWorker on an AsyncStore", "an awaitable"
        if inspect.iscoroutine(outcome):
            outcome.close()
    return f"the handler returned {what} ({type(outcome).__name__}): run it with {runner}"


async def _uncut(claiming: Awaitable[Generation | None], store: Any, worker_id: str) -> Generation | None:
    """An ``AsyncWorker``'s claim on ``store``, which a cancel of the worker's task does not cut off: the
    claim is a write whose commit may land after the cancel (a thread's SQLite statement, a PostgreSQL round
    trip), the row then left processing with no handler until its lease expired. Cancelled, the task waits
    for the claim and puts a job it took back in the queue (a retry: its attempt counted, as an expired
    lease's), then ends with the ``CancelledError``. An ``AsyncStore``'s ``close()`` waits for the claim and
    its put-back (``AsyncStore._claims``, as for its own claims), even called right after the cancel."""
    claim, over = asyncio.ensure_future(claiming), asyncio.get_running_loop().create_future()
    in_flight: set[Any] = getattr(store, "_claims", set())
    in_flight.add(over)
    try:
        return await asyncio.shield(claim)
    except asyncio.CancelledError:
        claimed = None
        with suppress(Exception):  # a claim that failed took nothing
            claimed = await claim
        if claimed is not None:  # a put-back that fails (cancelled meanwhile, busy) leaves it to its lease
            why = "the worker's task was cancelled as it claimed the job"
            with suppress(Exception):
                await store.fail(claimed.id, why, max_attempts=claimed.attempts + 1, worker_id=worker_id)
        raise
    finally:
        in_flight.discard(over)
        over.set_result(None)


async def _unswallowed(handling: Awaitable[Any]) -> Any:
    """An ``AsyncWorker``'s awaited handler, whose task ends with ``CancelledError`` when it was cancelled
    (``_task_cancelled``) even if the handler swallowed the cancel or raised another error for it (a client
    wrapping it): else the worker would fail or count the job and claim on, the cancel lost."""
    try:
        value = await handling
    except Exception as exc:
        if _task_cancelled():
            raise asyncio.CancelledError from exc
        raise
    if _task_cancelled():
        raise asyncio.CancelledError
    return value


def _task_cancelled() -> bool:
    """Whether the running task was asked to cancel (``Task.cancel``), as opposed to an await inside it whose
    future another task cancelled (that ``CancelledError`` is the handler's error, not the loop's end)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _claim_options(options: object, lease_seconds: float | None) -> tuple[dict[str, Any], float]:
    """``claim_options`` checked when the worker is made, not at its first claim, and the worker's lease:
    ``claim_next``'s ``owner_limit`` (the loop does its own waiting) and ``lease_seconds``, which becomes the
    worker's lease (the one its jobs' progress and heartbeat extend by too) unless the worker was given
    another one (InvalidInput: two leases). ``lease_seconds`` None: the worker was given none (the default
    lease, or claim_options')."""
    if options is None:
        return {}, DEFAULT_LEASE_SECONDS if lease_seconds is None else lease_seconds
    if not isinstance(options, Mapping):
        raise InvalidInput(
            f"claim_options must be a dict (owner_limit, lease_seconds) or None, got {type(options).__name__}"
        )
    checked = dict(options)
    for key in checked:
        if key not in ("owner_limit", "lease_seconds"):
            raise InvalidInput(
                f"claim_options takes owner_limit and lease_seconds only (the worker waits itself), "
                f"got {shown(key)}"
            )
    if checked.get("owner_limit") is not None:
        checked["owner_limit"] = validate.integer(checked["owner_limit"], "owner_limit", 0, MAX_OWNER_LIMIT)
    if "lease_seconds" in checked:
        lease = validate.seconds(checked.pop("lease_seconds"), "lease_seconds")
        if lease_seconds not in (None, lease):
            raise InvalidInput(
                f"two leases: lease_seconds={lease_seconds:g} and claim_options' lease_seconds={lease:g}; "
                "give the worker one"
            )
        lease_seconds = lease
    return checked, DEFAULT_LEASE_SECONDS if lease_seconds is None else lease_seconds


def _store_fits(store: object, awaited: bool) -> None:
    """InvalidInput for the other kind of store than the loop's (``awaited``: ``AsyncWorker``'s), when the
    worker is made: at its first job an ``AsyncWorker`` would have claimed it already with a blocking
    ``Store`` (left processing till its lease expired), a ``Worker`` would run its handler on an unawaited
    claim (a store whose ``claim_next`` is an ``async def``: an ``AsyncStore``). A store of another class
    is taken as given (a wrapper's plain ``claim_next`` may return the awaitable of an ``AsyncStore``'s); one
    without a ``claim_next`` is no store (None: its loop's first claim raised AttributeError)."""
    if not callable(getattr(store, "claim_next", None)):
        wanted = "AsyncWorker takes an AsyncStore" if awaited else "Worker takes a Store"
        raise InvalidInput(f"{wanted}, got {type(store).__name__} (it has no claim_next)")
    if awaited and isinstance(store, Store):
        raise InvalidInput("AsyncWorker takes an AsyncStore, got a Store: run a Store's jobs with Worker")
    if not awaited and inspect.iscoroutinefunction(getattr(store, "claim_next", None)):
        raise InvalidInput(
            f"Worker takes a Store, got {type(store).__name__}: run an AsyncStore's jobs with AsyncWorker"
        )


def _sees_writes(store: object) -> bool:
    """Whether ``store`` is musicstore's ``Store`` or ``AsyncStore``, whose completes and fails a worker's
    handler makes go through ``musicstore.ops`` (so the worker sees them: ``watching``). A store of another
    class is taken at its handler's word: a job whose handler returned is done."""
    from ..aio import AsyncStore  # not at import: the worker's module is imported by the store's users

    return isinstance(store, (Store, AsyncStore))


def _yielding(handler: object) -> None:
    """InvalidInput for a generator function handler (or a method, a ``functools.partial`` or an object's
    ``__call__`` of one), sync or async: calling it runs none of its body; and for one that is not callable
    at all, which failed every job it was given (a ``TypeError`` each, an attempt spent)."""
    if not callable(handler):
        raise InvalidInput(
            f"handler must be callable (it is called with each job), got {type(handler).__name__}"
        )
    while isinstance(handler, functools.partial):
        handler = handler.func
    call = type(handler).__call__
    if any(
        check(f)
        for f in (handler, call)
        for check in (inspect.isgeneratorfunction, inspect.isasyncgenfunction)
    ):
        raise InvalidInput(f"handler is a generator function: {_YIELDS}")


def _is_async_handler(handler: object) -> bool:
    """Whether calling ``handler`` surely gives a coroutine: an ``async def`` (or a method of one), a
    ``functools.partial`` of one, or an object whose ``__call__`` is one. A plain function may return an
    awaitable too (a lambda around an ``async def``): only its result tells."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)

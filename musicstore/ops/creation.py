"""A job's creation: ``create_generation`` (a ``Fixed`` write: the prompt's use counted, the row inserted)
and what an idempotency key's second request must agree on (re-exported by ``musicstore.ops.jobs``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import validate
from ..errors import IdempotencyConflict
from ..ids import new_id
from ..models import EXPORT_METADATA, Generation, Status, columns, prompt_digest
from .leases import LOCKED, Stamp
from .prompts import digest_taken
from .reads import GENERATION
from .steps import Call, Params, Steps, writes_fixed

TRACKED = columns("id")
"""What ``create_generation`` reads of the prompt row it counted a use of: that there is one."""


MIN_PRIORITY, MAX_PRIORITY = -32_768, 32_767
"""The range of ``priority`` (the schema checks it too)."""


def _create_params(now: datetime, stamp: Stamp, checked: tuple[Params, str, Any]) -> tuple[Params, Params]:
    fields, encoded, _ = checked
    at, text, run_after = stamp(now), fields["prompt"], fields["run_after"]
    digest = prompt_digest(text)
    insert = {**fields, "created_at": at, "metadata": encoded, "prompt_digest": digest}
    if run_after is not None:
        insert["run_after"] = stamp(run_after)
    return {"digest": digest, "text": text, "now": at}, insert


def _created(fields: Params, now: datetime, encoded: str, metadata: dict[str, Any] | None) -> Generation:
    kept = {} if metadata is None else validate.stored_metadata(metadata, encoded)
    return Generation(**fields, created_at=now, status=Status.PENDING, metadata=kept)


def _create_finish(found: list[Any], now: datetime, checked: tuple[Params, str, Any]) -> Generation:
    if found[0] is None:  # the prompt upsert updates only a row with the same text (nothing was inserted)
        raise digest_taken()
    return _created(checked[0], now, checked[1], checked[2])


def _create_first(
    fields: Params, encoded: str, metadata: dict[str, Any] | None
) -> Callable[[datetime], Steps[Generation | None]] | None:
    """With an idempotency key: the generation created with it before (the key's lock taken first), after
    checking it was asked the same; None: create it."""
    if fields["idempotency_key"] is None:
        return None
    return functools.partial(_created_before, fields=fields, metadata=metadata)


def _created_before(
    now: datetime, fields: Params, metadata: dict[str, Any] | None
) -> Steps[Generation | None]:
    key = fields["idempotency_key"]
    yield Call("lock_idempotency_key", {"idempotency_key": key}, LOCKED)
    earlier: Generation | None = yield Call("get_by_idempotency_key", {"idempotency_key": key}, GENERATION)
    if earlier is not None:
        _same_request(earlier, {**fields, "metadata": dict(metadata or {})})
    return earlier


@writes_fixed(
    (("track_prompt", TRACKED), ("insert_generation", None)),
    _create_params,
    _create_finish,
    first=_create_first,
)
def create_generation(
    prompt: str,
    *,
    model_name: str,
    duration_seconds: float,
    sample_rate: int = 32_000,
    channels: int = 2,
    model_version: str | None = None,
    metadata: dict[str, Any] | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    owner_key: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Params, str, dict[str, Any] | None]:
    """Enqueue a pending generation and count its prompt's use, in one transaction.

    ``priority``: higher is claimed first (-32768 to 32767). ``run_after``: not claimed before this moment.
    ``owner_key``: the user or tenant it runs for (claims are fair across keys; see ``set_owner_limit``).
    ``idempotency_key``: when a generation was created with this key before, it is returned instead of a new
    one (race-safe across processes); if that one was asked with another prompt, model, length, rate,
    channels, metadata, priority or owner key, ``IdempotencyConflict`` is raised (metadata compared as JSON:
    ``true`` is not ``1``; a completed one's metadata has its export's figures merged in: it agrees when it
    holds the asked keys with the asked values, as does one completed once, since failed by reconcile or
    replayed). Keys
    are unique among all generations while their row exists.
    """
    if metadata is not None:  # numpy's numbers as plain ones: what is kept, returned and compared
        metadata = validate.plain_metadata(metadata)
    encoded = "{}" if metadata is None else validate.metadata(metadata, checked=True)
    key = validate.name(idempotency_key, "idempotency_key", optional=True)
    fields: Params = {
        "id": new_id(),
        "prompt": validate.prompt(prompt),
        "model_name": validate.name(model_name, "model_name"),
        "model_version": validate.name(model_version, "model_version", optional=True),
        "duration_seconds": validate.duration(duration_seconds),
        "sample_rate": validate.sample_rate(sample_rate),
        "channels": validate.channels(channels),
        "priority": validate.integer(priority, "priority", MIN_PRIORITY, MAX_PRIORITY),
        "run_after": None if run_after is None else validate.moment(run_after, "run_after"),
        "owner_key": validate.name(owner_key, "owner_key", optional=True),
        "idempotency_key": key,
    }
    return fields, encoded, metadata


_REQUEST = (
    *("prompt", "model_name", "model_version", "duration_seconds", "sample_rate", "channels"),
    *("metadata", "priority", "owner_key"),
)
"""What two creations with one idempotency key must agree on (``run_after`` may differ: a client retrying
a request may compute it again)."""


def _same_json(kept: Any, wanted: Any) -> bool:
    """Whether two metadata values are the same JSON value: as ``==``, except that a bool equals only a bool
    (``true`` is not ``1``, which Python's ``True == 1`` would pass; the store keeps and reads back each as
    given). A number equals the same number, int or float: JSON has one kind of number."""
    if isinstance(kept, bool) or isinstance(wanted, bool):
        return type(kept) is type(wanted) and kept == wanted
    if isinstance(kept, dict):
        return (
            isinstance(wanted, dict)
            and kept.keys() == wanted.keys()
            and all(_same_json(kept[key], wanted[key]) for key in kept)
        )
    if isinstance(kept, list):
        return isinstance(wanted, list) and len(kept) == len(wanted) and all(map(_same_json, kept, wanted))
    return not isinstance(wanted, dict | list) and bool(kept == wanted)


def _agrees(earlier: Generation, asked: Params, name: str) -> bool:
    kept, wanted = getattr(earlier, name), asked[name]
    if name == "metadata" and (earlier.status is Status.COMPLETED or earlier.file_path is not None):
        # completing merged the export's figures (and merge_metadata more) into the row's: the keys asked
        # are there as asked, but for the export's own names, which it wrote over what was asked. Only a
        # completion sets file_path, and nothing clears it: a job completed once keeps that metadata when
        # reconcile's repair marks it failed (its master lost) and once replayed
        compared = ((key, value) for key, value in wanted.items() if key not in EXPORT_METADATA)
        return all(key in kept and _same_json(kept[key], value) for key, value in compared)
    if name == "metadata":
        return _same_json(kept, wanted)
    return bool(kept == wanted)


def _same_request(earlier: Generation, asked: Params) -> None:
    differ = [name for name in _REQUEST if not _agrees(earlier, asked, name)]
    if differ:
        raise IdempotencyConflict(
            f"idempotency key {asked['idempotency_key']!r} was used for generation {earlier.id} with another "
            f"{', '.join(differ)}; use a new key for a new request",
            existing_id=earlier.id,
        )

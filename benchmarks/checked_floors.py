"""The writes' checked floors (``harness.CHECKED``): the bare floor's SQL in the library's transaction plus
what the operation must do besides it, inline, with no runner and no generator. ``store_ops`` times them
beside the library; ``tests/test_bench_fair.py`` checks that each changes the rows as the library does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from musicstore import Generation, Requeued, Status, ops, validate
from musicstore.ids import check_id, new_id
from musicstore.models import prompt_digest
from musicstore.ops.jobs import CANDIDATES

from .bare import Bare

NO_DELAY = {"base_seconds": 0.0, "cap_seconds": 0.0, "jitter": 0.0}
"""A retry's backoff parameters (migration 0008) as ``fail`` and ``requeue_expired`` pass them by default."""


def checked_floors(bare: Bare, done: dict[str, Any]) -> dict[str, Callable[[Any], object]]:
    """The writes' checked floors (``harness.CHECKED``), on the library's inputs: the bare SQL in the same
    transaction, plus the operation's argument checks (the library's own ``validate`` functions), the clock,
    its parameters made from its arguments and its result objects, inline — no runner, no generator. Each
    returns what the library returns for the same call (``create`` a new job, so its id and time differ)."""
    ex, sql, w = bare.conn.execute, bare.sql, bare.writer
    track, insert, read = sql("track_prompt"), sql("insert_generation"), sql("get_generation_for_update")
    finish, heartbeat, retry = sql("complete_generation"), sql("heartbeat"), sql("retry_generation")
    requeue, fail_expired = sql("requeue_expired"), sql("fail_expired")
    decode, stamp = bare.generation, bare.stamp

    def create_body(x: tuple[dict[str, Any], dict[str, Any]]) -> None:
        if ex(track, x[0]).fetchone() is None:
            raise RuntimeError("the prompt's digest is another text's")
        ex(insert, x[1])

    create_tx = w(create_body)

    def create(x: tuple[str, dict[str, Any]]) -> Generation:
        prompt, meta = x
        encoded = validate.metadata(meta)
        key = validate.name(None, "idempotency_key", optional=True)
        fields: dict[str, Any] = {
            "id": new_id(), "prompt": validate.prompt(prompt),
            "model_name": validate.name("musicgen-small", "model_name"),
            "model_version": validate.name(None, "model_version", optional=True),
            "duration_seconds": validate.duration(30.0), "sample_rate": validate.sample_rate(32000),
            "channels": validate.channels(2), "priority": validate.integer(0, "priority", -32_768, 32_767),
            "run_after": None, "owner_key": validate.name(None, "owner_key", optional=True),
            "idempotency_key": key, "created_at": datetime.now(UTC),
        }  # fmt: skip
        row = Generation(**fields, status=Status.PENDING, metadata=dict(meta))
        digest, now = prompt_digest(row.prompt), stamp(row.created_at)
        params = {**fields, "created_at": now, "metadata": encoded, "prompt_digest": digest}
        create_tx(({"digest": digest, "text": row.prompt, "now": now}, params))
        return row

    def heartbeat_body(params: dict[str, Any]) -> None:
        if ex(heartbeat, params).rowcount != 1:
            raise RuntimeError("the heartbeat matched no row")

    heartbeat_tx = w(heartbeat_body, alone=ops.heartbeat.alone)

    def beat(gid: str) -> datetime:
        job, worker = check_id(gid), validate.name("bench", "worker_id")
        expires = datetime.now(UTC) + timedelta(0, validate.seconds(300.0, "lease_seconds"))
        heartbeat_tx({"id": job, "worker_id": worker, "lease_expires_at": stamp(expires)})
        return expires

    completed: list[Generation] = []

    def complete_body(x: tuple[str, str, int, datetime]) -> None:
        gid, path, size, now = x
        row = ex(read, {"id": gid}).fetchone()
        current = None if row is None else decode(row)
        if current is None or current.status is not Status.PROCESSING:
            raise RuntimeError("not processing")
        seconds = max((now - (current.started_at or now)).total_seconds(), 0.0)
        merged = {**current.metadata, **done}
        update = {"id": gid, "worker_id": None, "now": stamp(now), "file_path": path,
                  "file_size_bytes": size, "generation_time_seconds": seconds,
                  "metadata": validate.metadata(merged, checked=True)}  # fmt: skip
        if ex(finish, update).rowcount != 1:
            raise RuntimeError("the complete matched no row")
        current.status, current.completed_at, current.lease_expires_at = Status.COMPLETED, now, None
        current.file_path, current.file_size_bytes, current.generation_time_seconds = path, size, seconds
        current.metadata, current.error_message = merged, None
        completed[:] = [current]

    complete_tx = w(complete_body)

    def complete(gid: str) -> Generation:
        job = check_id(gid)
        path = validate.relative_path(f"2026/11/22/{gid}.wav")
        size = validate.file_size(3_840_044)
        validate.name(None, "worker_id", optional=True)
        validate.check_metadata(done)
        complete_tx((job, path, size, datetime.now(UTC)))
        return completed[0]

    def fail_body(params: dict[str, Any]) -> None:
        if ex(retry, params).rowcount != 1:
            raise RuntimeError("the retry matched no row")

    fail_tx = w(fail_body, alone=ops.fail.alone)

    def fail(gid: str) -> Status:
        job, message = check_id(gid), validate.message("CUDA out of memory", "error_message")
        validate.flag(True, "retry")
        attempts = validate.integer(3, "max_attempts", 1)
        worker = validate.name(None, "worker_id", optional=True)
        fail_tx({"id": job, "worker_id": worker, "error_message": message, "max_attempts": attempts,
                 "now": stamp(datetime.now(UTC)), **NO_DELAY})  # fmt: skip
        return Status.PENDING

    found: list[list[Any]] = []

    def requeue_body(params: dict[str, Any]) -> None:
        found[:] = [ex(requeue, {**params, **NO_DELAY}).fetchall(), ex(fail_expired, params).fetchall()]

    requeue_tx = w(requeue_body)

    def requeue_expired(_: None) -> Requeued:
        attempts = validate.integer(3, "max_attempts", 1)
        requeue_tx({"now": stamp(datetime.now(UTC)), "max_attempts": attempts})
        return Requeued(sorted(r[0] for r in found[0]), sorted(r[0] for r in found[1]))

    fast, heads, claim_head = sql("claim_fast"), sql("queue_heads"), sql("claim_lane_head")

    def claim_row(params: dict[str, Any]) -> Any:
        """claim_fast's row; after PostgreSQL's row of NULLs (its lanes' heads do not decide the claim) the
        lanes ranked and the best one's head taken, as the bare floor does."""
        row = ex(fast, params).fetchone()
        if row is None or row[0] is not None:
            return row
        ranked = {"now": params["now"], "default_limit": params["default_limit"], "limit": CANDIDATES}
        for lane, max_running, *_ in ex(heads, ranked).fetchall():
            lane_params = {**params, "owner_key": lane, "max_running": max_running}
            del lane_params["default_limit"]
            row = ex(claim_head, lane_params).fetchone()
            if row is not None:
                return row
        return None

    taken: list[Generation] = []

    def claim_body(params: dict[str, Any]) -> None:
        row = claim_row(params)
        taken[:] = [] if row is None else [decode(row)]

    claim_tx = w(claim_body, alone=ops.claim_next.alone)

    def claim_params(worker_id: str) -> dict[str, Any]:
        worker = validate.name(worker_id, "worker_id")
        lease = timedelta(0, validate.seconds(300.0, "lease_seconds"))
        now = datetime.now(UTC)
        return {"worker_id": worker, "now": stamp(now), "lease_expires_at": stamp(now + lease),
                "default_limit": None}  # fmt: skip

    def claim(_: None) -> Generation | None:
        claim_tx(claim_params("bench-lib"))
        return taken[0] if taken else None

    def claim_batch_body(x: tuple[dict[str, Any], int]) -> None:
        params, count = x
        taken.clear()
        while len(taken) < count:
            row = claim_row(params)
            if row is None:
                break
            taken.append(decode(row))

    claim_batch_tx = w(claim_batch_body)

    def claim_batch(_: None) -> list[Generation]:
        count = validate.integer(10, "count", 1, validate.MAX_PAGE)
        claim_batch_tx((claim_params("bench-lib"), count))
        return list(taken)

    return {
        "create": create,
        "claim": claim,
        "claim_batch": claim_batch,
        "heartbeat": beat,
        "complete": complete,
        "fail": fail,
        "requeue_expired": requeue_expired,
    }

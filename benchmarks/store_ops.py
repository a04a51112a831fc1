"""Every store operation beside its floors, on SQLite or PostgreSQL: what both store benchmarks run.

Sides, each a loop over inputs prepared before timing:

- ``musicstore``: the public ``Store`` method.
- ``fair floor`` (reads): the library's SQL text (``musicstore.queries.load``) on a bare connection opened
  with the library's settings, rows fetched as tuples and decoded by hand into the objects the library returns
  (``benchmarks.fair``); asserted equal to the library's result before timing.
- ``bare floor``: the same SQL returning tuples, parameters prepared ahead; for writes, inside the library's
  transaction as the library sends it (``BEGIN IMMEDIATE … COMMIT`` on SQLite; on psycopg BEGIN and COMMIT
  through libpq's ``exec_``, and none at all for a write whose first statement may commit alone,
  ``Operation.alone``: claim, heartbeat, fail, cancel).
- ``checked floor`` (create, claim_next, claim_batch, heartbeat, complete, fail, requeue_expired): the bare
  floor's SQL in the same transaction plus what the operation must do besides it, on the library's inputs —
  the same ``validate`` checks, the clock, its parameters made from its arguments (id, digest, JSON,
  timestamps), the row count checked, the same result objects — inline, with no runner and no generator
  (``checked_floors``): what any code doing what the operation does costs at least. Where it is over a
  target, the target is beyond reach.

Writes get their jobs from ``benchmarks.data.add_jobs`` before each batch (untimed): a claim always finds a
pending job, a heartbeat, complete or fail a job processing by the right worker, a cancel a pending one.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from musicstore import Store, ops
from musicstore.ids import new_id
from musicstore.models import prompt_digest

from . import fair
from .bare import FAR_FUTURE, Bare
from .checked_floors import NO_DELAY, checked_floors
from .data import add_jobs, create_metadata, done_metadata, make_prompt
from .harness import BARE, CHECKED, FAIR, LIBRARY, Plan, Prepare, Timing, alternate, profile

ALONE: dict[str, bool] = {
    "claim": ops.claim_next.alone, "heartbeat": ops.heartbeat.alone, "fail": ops.fail.alone,
    "cancel": ops.cancel.alone,
}  # fmt: skip
"""Which of the benchmark's writes may commit their first statement alone (``Operation.alone``)."""
JOB_METADATA = {"genre": "lofi", "bpm": 90, "seed": 7}  # what add_jobs gives each job


@dataclass
class Op:
    key: str
    label: str
    kind: str  # "read" or "write"
    batch: int  # operations per batch (full plan)
    library: Prepare
    bare: Prepare
    fair: Prepare | None = None
    check: Callable[[], None] | None = None
    checked: Prepare | None = None


Inputs = Callable[[int], list[Any]]
"""The inputs of k operations (built before timing)."""


def looped(inputs: Inputs, call: Callable[[Any], object]) -> Prepare:
    def prepare(k: int) -> Callable[[], None]:
        xs = inputs(k)

        def timed() -> None:
            for x in xs:
                call(x)

        return timed

    return prepare


def none(k: int) -> list[Any]:
    return [None] * k


def reads(store: Store, bare: Bare, rows: int) -> list[Op]:
    """The reads, each with its fair floor checked against the library on its inputs."""
    ex, gen, prm = bare.conn.execute, bare.generation, bare.prompt
    cur = ex(bare.sql("get_generation"), {"id": "none"})
    fair.check_columns(cur.description, fair.GENERATION_COLUMNS)
    fair.check_columns(ex(bare.sql("totals")).description, fair.TOTALS_COLUMNS)
    ids = [r[0] for r in ex("SELECT id FROM generations ORDER BY random() LIMIT 2000").fetchall()]
    deep = store.list_generations(limit=1, offset=rows * 9 // 10).items[0]
    cursor, text = fair.cursor_of(deep), store.get_generation(ids[0]).prompt  # type: ignore[union-attr]
    get, lists, newest = (
        bare.sql("get_generation"),
        bare.sql("list_generations_by_status"),
        bare.sql("list_generations"),
    )
    totals, most, by_text = bare.sql("totals"), bare.sql("most_used_prompts"), bare.sql("get_prompt_by_text")
    end = bare.stamp(FAR_FUTURE)
    deep_at, deep_id = fair.cursor_bounds(cursor)
    deep_params = {"before_created_at": bare.stamp(fair.as_datetime(deep_at)), "before_id": deep_id}
    page = {"limit": 51, "offset": 0}  # a page of 50 and the row that says whether a next page exists

    def cycled(k: int) -> list[Any]:
        return [ids[i % len(ids)] for i in range(k)]

    def fair_get(gid: str) -> Any:
        r = ex(get, {"id": gid}).fetchone()
        return None if r is None else gen(r)

    def fair_pending(_: None) -> Any:
        params = {"status": "pending", "before_created_at": end, "before_id": "z", "limit": 51, "offset": 0}
        return fair.page(ex(lists, params).fetchall(), 50, gen)

    def fair_newest(_: None) -> Any:
        params = {"before_created_at": end, "before_id": "z", "limit": 51, "offset": 0}
        return fair.page(ex(newest, params).fetchall(), 50, gen)

    def fair_deep(c: str) -> Any:
        at, gid = fair.cursor_bounds(c)
        params = {
            "before_created_at": bare.stamp(fair.as_datetime(at)),
            "before_id": gid,
            "limit": 51,
            "offset": 0,
        }
        return fair.page(ex(newest, params).fetchall(), 50, gen)

    def fair_by_text(t: str) -> Any:
        r = ex(by_text, {"digest": prompt_digest(t), "text": t}).fetchone()
        return None if r is None else prm(r)

    def bare_rows(text_: str, params: dict[str, Any], one: bool = False) -> Callable[[Any], object]:
        if one:
            return lambda _: ex(text_, params).fetchone()
        return lambda _: ex(text_, params).fetchall()

    def fixed(value: Any) -> Callable[[int], list[Any]]:
        return lambda k: [value] * k

    specs: list[tuple[str, str, int, Callable[[int], list[Any]], Callable[[Any], object], Any, Any]] = [
        ("get", "get by id", 2000, cycled, store.get_generation, fair_get, (get, None)),
        ("list_pending", "list pending, first page of 50", 200, none,
         lambda _: store.list_generations(status="pending", limit=50), fair_pending,
         (lists, {"status": "pending", "before_created_at": end, "before_id": "z", **page})),
        ("list_newest", "list newest, first page of 50", 200, none,
         lambda _: store.list_generations(limit=50), fair_newest,
         (newest, {"before_created_at": end, "before_id": "z", **page})),
        ("list_deep", "list newest, keyset page at 90 %", 200, fixed(cursor),
         lambda c: store.list_generations(limit=50, cursor=c), fair_deep, (newest, {**deep_params, **page})),
        ("stats", "stats", 2000, none, lambda _: store.get_database_stats(),
         lambda _: fair.stats(ex(totals).fetchall()), (totals, {})),
        ("count", "count by status", 2000, none, lambda _: store.count_generations(status="pending"),
         lambda _: fair.count(ex(totals).fetchall(), "pending"), (totals, {})),
        ("most_used", "most-used prompts (10)", 500, none, lambda _: store.get_most_used_prompts(10),
         lambda _: [prm(r) for r in ex(most, {"limit": 10}).fetchall()], (most, {"limit": 10})),
        ("prompt_by_text", "prompt by text", 1000, fixed(text), store.get_prompt_by_text, fair_by_text,
         (by_text, {"digest": prompt_digest(text), "text": text})),
    ]  # fmt: skip
    ops = []
    for key, label, batch, inputs, lib, floor, (sql_text, params) in specs:
        if key == "get":
            bare_call: Callable[[Any], object] = lambda gid: ex(get, {"id": gid}).fetchone()  # noqa: E731
        else:
            bare_call = bare_rows(sql_text, params, one=key == "prompt_by_text")

        def check(inputs: Any = inputs, lib: Any = lib, floor: Any = floor, label: str = label) -> None:
            for x in inputs(50)[:50]:
                fair.same(lib(x), floor(x), label)

        ops.append(Op(key, label, "read", batch, looped(inputs, lib), looped(inputs, bare_call),
                      looped(inputs, floor), check))  # fmt: skip
    return ops


def writes(store: Store, bare: Bare) -> list[Op]:
    """The writes, each beside the bare SQL in the same transaction."""
    ex, sql, rng, counter = bare.conn.execute, bare.sql, random.Random(5), itertools.count()
    done = done_metadata(rng)
    merged = json.dumps({**JOB_METADATA, **done}, separators=(",", ":"))
    track, insert, heads, claim_head, fast = (
        sql(n) for n in ("track_prompt", "insert_generation", "queue_heads", "claim_lane_head", "claim_fast")
    )
    read, finish, heartbeat = sql("get_generation_for_update"), sql("complete_generation"), sql("heartbeat")
    retry, cancel, requeue, fail_expired = (
        sql(n) for n in ("retry_generation", "cancel_generation", "requeue_expired", "fail_expired")
    )

    def stamps() -> tuple[Any, Any]:
        now = datetime.now(UTC)
        return bare.stamp(now), bare.stamp(now + timedelta(seconds=300))

    def creates(k: int) -> list[tuple[str, dict[str, Any]]]:
        return [(make_prompt(rng, f"w{next(counter)}"), create_metadata(rng)) for _ in range(k)]

    def create(x: tuple[str, dict[str, Any]]) -> object:
        prompt, meta = x
        return store.create_generation(prompt, model_name="musicgen-small", duration_seconds=30.0,
                                       sample_rate=32000, channels=2, metadata=meta)  # fmt: skip

    def bare_creates(k: int) -> list[Any]:
        now, out = stamps()[0], []
        for prompt, meta in creates(k):
            digest = prompt_digest(prompt)
            row = {"id": new_id(), "prompt": prompt, "model_name": "musicgen-small", "model_version": None,
                   "duration_seconds": 30.0, "sample_rate": 32000, "channels": 2, "created_at": now,
                   "metadata": json.dumps(meta, separators=(",", ":")), "prompt_digest": digest,
                   "priority": 0, "run_after": None, "owner_key": None, "idempotency_key": None}  # fmt: skip
            out.append(({"digest": digest, "text": prompt, "now": now}, row))
        return out

    def bare_create(x: Any) -> None:
        ex(track, x[0]).fetchone()
        ex(insert, x[1])

    def pending(k: int) -> list[None]:
        return none(len(add_jobs(store, k)))

    def claimed(job: object) -> None:
        if job is None:
            raise RuntimeError("claim found no pending job")

    def claim_params(k: int, per: int = 1) -> list[Any]:
        add_jobs(store, k * per)
        now, lease = stamps()
        claim = {"worker_id": "bench-floor", "now": now, "lease_expires_at": lease, "default_limit": None}
        return [{**claim, "limit": per}] * k

    def claim_one(x: dict[str, Any]) -> object:
        """claim_next's statements (migration 0012): the whole claim in one statement (``claim_fast``), which
        takes a job whenever one is ready here (no owner keys, no other claimer) and returns no row when
        nothing is ready; only its row of NULLs (PostgreSQL: the lanes' heads do not decide it) goes on to
        rank the lanes and take the best one's head."""
        row = ex(fast, x).fetchone()
        if row is None or row[0] is not None:
            return row
        for lane, max_running, *_ in ex(
            heads, {"now": x["now"], "default_limit": None, "limit": 8}
        ).fetchall():
            params = {**x, "owner_key": lane, "max_running": max_running}
            params.pop("limit")
            params.pop("default_limit")
            row = ex(claim_head, params).fetchone()
            if row is not None:
                return row
        return None

    def claim_many(x: dict[str, Any]) -> list[object]:
        return [claim_one(x) for _ in range(x["limit"])]

    def processing(k: int) -> list[str]:
        return add_jobs(store, k, worker="bench")

    def params(make: Callable[[str, Any, Any], Any], jobs: Inputs = processing) -> Inputs:
        return lambda k: [make(gid, *stamps()) for gid in jobs(k)]

    def complete(gid: str) -> object:
        path = f"2026/11/22/{gid}.wav"
        return store.complete_generation(gid, file_path=path, file_size_bytes=3_840_044, metadata=done)

    def complete_params(gid: str, now: Any, _: Any) -> Any:
        update = {"id": gid, "worker_id": None, "now": now, "file_path": f"2026/11/22/{gid}.wav",
                  "file_size_bytes": 3_840_044, "generation_time_seconds": 42.0,
                  "metadata": merged}  # fmt: skip
        return {"id": gid}, update

    def bare_complete(x: Any) -> None:
        ex(read, x[0]).fetchone()
        if ex(finish, x[1]).rowcount != 1:
            raise RuntimeError("the floor's complete matched no row")

    def one(text: str) -> Callable[[Any], None]:
        def body(x: Any) -> None:
            if ex(text, x).rowcount != 1:
                raise RuntimeError("the floor's UPDATE matched no row")

        return body

    def bare_requeue(x: Any) -> None:
        ex(requeue, x).fetchall()
        ex(fail_expired, {"now": x["now"], "max_attempts": x["max_attempts"]}).fetchall()

    w = bare.writer
    checked = checked_floors(bare, done)
    specs: list[tuple[str, str, int, Inputs, Callable[[Any], object], Inputs, Callable[[Any], object]]] = [
        ("create", "create", 200, creates, create, bare_creates, bare_create),
        ("requeue_expired", "requeue_expired (none due)", 200, none, lambda _: store.requeue_expired(),
         lambda k: [{"now": stamps()[0], "max_attempts": 3, **NO_DELAY}] * k, bare_requeue),
        ("claim", "claim_next", 200, pending, lambda _: claimed(store.claim_next("bench-lib")),
         claim_params, lambda x: claimed(claim_one(x))),
        ("claim_batch", "claim_batch(10)", 20, lambda k: none(len(add_jobs(store, 10 * k)) // 10),
         lambda _: store.claim_batch("bench-lib", 10), lambda k: claim_params(k, 10),
         claim_many),
        ("heartbeat", "heartbeat", 200, processing, lambda gid: store.heartbeat(gid, "bench"),
         params(lambda gid, now, lease: {"id": gid, "worker_id": "bench", "lease_expires_at": lease}),
         one(heartbeat)),
        ("complete", "complete", 200, processing, complete, params(complete_params), bare_complete),
        ("fail", "fail (retry)", 200, processing, lambda gid: store.fail(gid, "CUDA out of memory"),
         params(lambda gid, now, lease: {"id": gid, "worker_id": None, "error_message": "CUDA out of memory",
                                         "max_attempts": 3, "now": now, **NO_DELAY}), one(retry)),
        ("cancel", "cancel", 200, lambda k: add_jobs(store, k), store.cancel,
         params(lambda gid, now, lease: {"id": gid, "now": now, "reason": None},
                lambda k: add_jobs(store, k)),
         one(cancel)),
    ]  # fmt: skip
    return [
        Op(key, label, "write", batch, looped(lib_inputs, lib),
           looped(bare_inputs, w(body, alone=ALONE.get(key, False))),
           checked=looped(lib_inputs, checked[key]) if key in checked else None)
        for key, label, batch, lib_inputs, lib, bare_inputs, body in specs
    ]  # fmt: skip


def sides_of(op: Op) -> dict[str, Prepare]:
    """The sides an operation is timed on, in their order: the library, the fair floor (reads), the bare
    floor and, where there is one, the checked floor (writes)."""
    sides = {LIBRARY: op.library, **({FAIR: op.fair} if op.fair else {}), BARE: op.bare}
    if op.checked is not None:
        sides[CHECKED] = op.checked
    return sides


def run(
    store: Store, bare: Bare, rows: int, plan: Plan, *, only: set[str] | None, profiled: bool
) -> tuple[list[Timing], list[str]]:
    """Time every operation (reads first: the writes add rows) at one size; the timings and any profiles."""
    timings, profiles = [], []
    for op in reads(store, bare, rows) + writes(store, bare):
        if only and op.key not in only:
            continue
        if op.check is not None:
            op.check()
        timing = Timing(rows, op.label, op.kind, alternate(sides_of(op), plan.batch(op.batch), plan))
        print(timing.line(), flush=True)
        timings.append(timing)
        if profiled:
            profiles.append(profile(op.library(plan.batch(op.batch)), f"{op.label} at {rows:,} rows"))
    return timings, profiles

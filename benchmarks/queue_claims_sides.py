"""The claims ``queue_claims`` races beside the library's ``claim_next``, and the queues they claim from: the
plain claim before migration 0008 (``PLAIN``), the floor of a claim with per-key limits (``FLOOR``, on
``FLOOR_SCHEMA``'s counter rows; ``FloorLanes`` picks its lane) and PostgreSQL's start-time tags
(``TAGS_CLAIM`` on ``TAGS_SCHEMA``, ``benchmarks.queue_tag_order``); each a step function run through the
store's own driver (``_register``). ``_spread`` gives a queue's pending jobs owner keys and priorities."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from musicstore import Generation, Store
from musicstore.ops import NOW, Call, Steps, writer_alone
from musicstore.ops.jobs import _fast, _Undecided
from musicstore.ops.reads import GENERATION
from musicstore.queries import Query

# The claim before migration 0008 (sql/*/claim.sql at 7f50a59~4), for the baseline.
PLAIN = {
    "sqlite": "UPDATE generations SET status = 'processing', worker_id = :worker_id, started_at = :now,"
    " lease_expires_at = :lease_expires_at, attempts = attempts + 1"
    " WHERE id = (SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1)"
    " RETURNING *",
    "postgres": "UPDATE generations SET status = 'processing', worker_id = %(worker_id)s,"
    " started_at = %(now)s, lease_expires_at = %(lease_expires_at)s, attempts = attempts + 1"
    " WHERE id = (SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
    " FOR UPDATE SKIP LOCKED) RETURNING *",
}
# The floor's claim (run 4): the head of the lane the client names, while the lane's counter is under the
# limit; the counter row is bumped by the floor's trigger (FLOOR_SCHEMA) in the same statement.
FLOOR = {
    "sqlite": "UPDATE generations SET status = 'processing', worker_id = :worker_id, started_at = :now,"
    " lease_expires_at = :lease_expires_at, attempts = attempts + 1"
    " WHERE id = (SELECT g.id FROM generations AS g INDEXED BY generations_lane_queue"
    " WHERE coalesce(g.owner_key, '') = :owner_key AND g.status = 'pending'"
    " AND (g.run_after IS NULL OR g.run_after <= :now) ORDER BY g.priority DESC, g.created_at, g.id LIMIT 1)"
    " AND (SELECT c.running FROM floor_lanes AS c WHERE c.owner_key = :owner_key) < :max_running"
    " RETURNING *",
    "postgres": "WITH lane AS (SELECT c.running FROM floor_lanes AS c WHERE c.owner_key = %(owner_key)s"
    " FOR UPDATE SKIP LOCKED),"
    " claimed AS (UPDATE generations SET status = 'processing', worker_id = %(worker_id)s,"
    " started_at = %(now)s, lease_expires_at = %(lease_expires_at)s, attempts = attempts + 1"
    " WHERE id = (SELECT g.id FROM generations AS g"
    " WHERE EXISTS (SELECT 1 FROM lane WHERE lane.running < %(max_running)s)"
    " AND coalesce(g.owner_key, '') = %(owner_key)s AND g.status = 'pending'"
    " AND (g.run_after IS NULL OR g.run_after <= %(now)s)"
    " ORDER BY g.priority DESC, g.created_at, g.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING generations.*)"
    " SELECT * FROM claimed UNION ALL SELECT (NULL::generations).* WHERE NOT EXISTS (SELECT 1 FROM lane)"
    " AND EXISTS (SELECT 1 FROM floor_lanes AS c WHERE c.owner_key = %(owner_key)s)",
}
"""On PostgreSQL the counter row is locked ``FOR UPDATE SKIP LOCKED`` as the library's lane row is (a lane
another claimer holds is skipped, not waited for: its lock lasts to that claim's commit), and read in its
newest committed version; a row of NULLs says the lane was held (the client goes on to the next key and keeps
this one), no row that it was empty or at its limit (or has no counter row: a key without jobs)."""
KEYS, PRIORITIES = 50, 3
FLOOR_SCHEMA = {
    "sqlite": (
        *(
            f"DROP TRIGGER generations_lanes_{event}"
            for event in ("insert", "move", "finish", "update", "delete")
        ),
        "CREATE TABLE floor_lanes (owner_key TEXT PRIMARY KEY, running INTEGER NOT NULL)"
        " STRICT, WITHOUT ROWID",
        "INSERT INTO floor_lanes SELECT DISTINCT owner_key, 0 FROM generations WHERE owner_key IS NOT NULL",
        "CREATE TRIGGER floor_lanes_claim AFTER UPDATE OF status ON generations"
        " WHEN NEW.owner_key IS NOT NULL AND OLD.status = 'pending' AND NEW.status = 'processing'"
        " BEGIN UPDATE floor_lanes SET running = running + 1 WHERE owner_key = NEW.owner_key; END",
    ),
    "postgres": (
        *(
            f"DROP TRIGGER generations_lanes_{event} ON generations"
            for event in ("insert", "update", "delete")
        ),
        "CREATE TABLE floor_lanes (owner_key text PRIMARY KEY, running integer NOT NULL)",
        "INSERT INTO floor_lanes SELECT DISTINCT owner_key, 0 FROM generations WHERE owner_key IS NOT NULL",
        "CREATE FUNCTION floor_lanes_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " UPDATE floor_lanes SET running = running + 1 WHERE owner_key = NEW.owner_key; RETURN NULL; END $$",
        "CREATE TRIGGER floor_lanes_claim AFTER UPDATE OF status ON generations FOR EACH ROW"
        " WHEN (NEW.owner_key IS NOT NULL AND OLD.status = 'pending' AND NEW.status = 'processing')"
        " EXECUTE FUNCTION floor_lanes_claim()",
    ),
}
"""The floor's lane bookkeeping in place of the library's: one counter row per key, bumped at a claim."""
FLOOR_MISCOUNTED = (
    "SELECT count(*) FROM floor_lanes AS c WHERE c.running <> (SELECT count(*) FROM generations AS g"
    " WHERE g.owner_key = c.owner_key AND g.status = 'processing')"
)
"""The floor's counters that differ from their key's processing jobs (0 after a correct run)."""
TAGS_CLAIM = (
    "UPDATE generations SET status = 'processing', worker_id = %(worker_id)s, started_at = %(now)s,"
    " lease_expires_at = %(lease_expires_at)s, attempts = attempts + 1"
    " WHERE id = (SELECT g.id FROM generations AS g WHERE g.status = 'pending'"
    " AND (g.run_after IS NULL OR g.run_after <= %(now)s)"
    " AND EXISTS (SELECT 1 FROM tag_lanes AS c WHERE c.owner_key = g.owner_key"
    " AND c.running < coalesce(c.max_running, %(max_running)s) FOR UPDATE SKIP LOCKED)"
    " ORDER BY g.priority DESC, g.fair_tag, g.created_at, g.id LIMIT 1 FOR UPDATE OF g SKIP LOCKED)"
    " RETURNING *"
)
"""PostgreSQL, ``benchmarks.queue_tag_order`` (a fair order considered, not the library's): start-time fair
queuing. Each job has a tag given at enqueue (its rank among its key's jobs of its priority), and the claim
takes the first pending job in (priority, tag, age) order whose key's counter row (``tag_lanes``) is under
its limit and free (``SKIP LOCKED``): one walk of one index, whose entries never move once made."""
TAGS_SCHEMA = (
    *(f"DROP TRIGGER generations_lanes_{event} ON generations" for event in ("insert", "update", "delete")),
    "ALTER TABLE generations ADD COLUMN fair_tag bigint",
    "UPDATE generations AS g SET fair_tag = r.n FROM (SELECT id, row_number() OVER (PARTITION BY owner_key,"
    " priority ORDER BY created_at, id) AS n FROM generations WHERE status = 'pending') AS r"
    " WHERE r.id = g.id",
    "CREATE INDEX generations_tag_order ON generations (priority DESC, fair_tag, created_at, id)"
    " WHERE status = 'pending'",
    "CREATE TABLE tag_lanes (owner_key text PRIMARY KEY, running integer NOT NULL, max_running integer)",
    "INSERT INTO tag_lanes SELECT owner_key, count(*) FILTER (WHERE status = 'processing'), NULL"
    " FROM generations WHERE owner_key IS NOT NULL GROUP BY owner_key",
    "CREATE FUNCTION tag_lanes_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " UPDATE tag_lanes SET running = running + 1 WHERE owner_key = NEW.owner_key; RETURN NULL; END $$",
    "CREATE TRIGGER tag_lanes_claim AFTER UPDATE OF status ON generations FOR EACH ROW"
    " WHEN (NEW.owner_key IS NOT NULL AND OLD.status = 'pending' AND NEW.status = 'processing')"
    " EXECUTE FUNCTION tag_lanes_claim()",
    "ANALYZE generations",
    "ANALYZE tag_lanes",
)
"""The tag order's schema on a queue ``_spread`` made (every pending job keyed): the library's lane triggers
dropped, the tags given as enqueues would have given them, the order's index and one counter row per key."""


@writer_alone  # one statement: sent as claim_next's first statement is (Operation.alone)
def plain_claim_next(worker_id: str) -> Steps[Generation | None]:
    now = yield NOW
    params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
    claimed: Generation | None = yield Call("plain_claim_next", params, GENERATION)
    return claimed


@writer_alone
def floor_claim_next(
    worker_id: str, owner_key: str, max_running: int
) -> Steps[Generation | _Undecided | None]:
    now = yield NOW
    params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
    lane = {**params, "owner_key": owner_key, "max_running": max_running}
    claimed: Generation | _Undecided | None = yield Call("floor_claim_lane", lane, _fast)
    return claimed


@writer_alone
def tags_claim_next(worker_id: str, max_running: int) -> Steps[Generation | None]:
    now = yield NOW
    params = {"worker_id": worker_id, "now": now, "lease_expires_at": now + timedelta(seconds=300)}
    claimed: Generation | None = yield Call("tags_claim", {**params, "max_running": max_running}, GENERATION)
    return claimed


class FloorLanes:
    """The floor's choice of lane: the keys in turn, from ``start``, each dropped once found empty (a lane
    another claimer holds, on PostgreSQL, is kept for its next turn)."""

    def __init__(self, start: int) -> None:
        self.keys = [f"user-{(start + k) % KEYS}" for k in range(KEYS)]
        self.turn = 0

    def claim(self, store: Store, worker: str, limit: int) -> Generation | None:
        while self.keys:
            self.turn %= len(self.keys)
            job = store.run(floor_claim_next, worker, self.keys[self.turn], limit)
            if isinstance(job, _Undecided):
                self.turn += 1  # held by another claimer: its next turn
                continue
            if job is not None:
                self.turn += 1
                return job
            del self.keys[self.turn]  # empty, or at its limit
        return None


def _register(store: Store) -> None:
    """The benchmark's own statements, run through the store's driver as its queries are."""
    store._queries["plain_claim_next"] = Query("plain_claim_next", PLAIN[store._connector.dialect], "one")
    store._queries["floor_claim_lane"] = Query("floor_claim_lane", FLOOR[store._connector.dialect], "one")
    if store._connector.dialect == "postgres":
        store._queries["tags_claim"] = Query("tags_claim", TAGS_CLAIM, "one")


def floor_miscounted(url: str) -> int:
    """How many of the floor's counters differ from their key's processing jobs (FLOOR_MISCOUNTED)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(FLOOR_MISCOUNTED).fetchone()[0])
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(FLOOR_MISCOUNTED).fetchone()
        return int(row[0]) if row else -1


def _spread(url: str, dialect: str, floor: bool = False) -> None:
    """Give the pending jobs owner keys and priorities at random (50 keys, 3 priorities); ``floor``: and
    replace the library's lane bookkeeping with the floor's counter rows (FLOOR_SCHEMA)."""
    if dialect == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                f"UPDATE generations SET owner_key = 'user-' || (abs(random()) % {KEYS}),"
                f" priority = abs(random()) % {PRIORITIES} WHERE status = 'pending'"
            )
            for statement in FLOOR_SCHEMA[dialect] if floor else ():
                conn.execute(statement)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE generations SET owner_key = 'user-' || floor(random() * {KEYS})::int,"
            f" priority = floor(random() * {PRIORITIES})::int WHERE status = 'pending'"
        )
        for statement in FLOOR_SCHEMA[dialect] if floor else ():
            conn.execute(statement)
        conn.execute("ANALYZE generations")

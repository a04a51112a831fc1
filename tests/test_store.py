"""The job lifecycle on a real SQLite file: every operation, transition and error."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import musicstore
from musicstore import (
    RESET_CONFIRMATION,
    ConfirmationRequired,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    MigrationError,
    NotFound,
    Status,
    Store,
)
from musicstore.models import Generation
from musicstore.queries import execute, load
from tests.conftest import FakeClock, new_job
from tests.connecting import opened


def test_create_then_get_returns_the_same_row(store: Store, clock: FakeClock) -> None:
    job = new_job(store, sample_rate=44_100, channels=1, model_version="1.2", metadata={"bpm": 90})
    assert job.status is Status.PENDING and job.is_pending and not job.is_finished
    assert job.created_at == clock.now and job.attempts == 0
    assert store.get_generation(job.id) == job


def test_unknown_id_reads_as_none_and_mutations_raise_not_found(store: Store) -> None:
    missing = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"
    assert store.get_generation(missing) is None
    for call in (
        lambda: store.cancel(missing),
        lambda: store.delete_generation(missing),
        lambda: store.fail(missing, "boom"),
        lambda: store.heartbeat(missing, "w"),
        lambda: store.complete_generation(missing, file_path="a.wav", file_size_bytes=1),
    ):
        with pytest.raises(NotFound, match=missing):
            call()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "01a2285e-9c52-7f03-b1dc-9c09af26b69d\n", "", 7])
def test_malformed_id_is_invalid_input(store: Store, bad: object) -> None:
    with pytest.raises(InvalidInput, match="UUID"):
        store.get_generation(bad)  # type: ignore[arg-type]


def test_claim_takes_oldest_first_and_sets_lease(store: Store, clock: FakeClock) -> None:
    first = new_job(store, "first")
    clock.advance(1)
    new_job(store, "second")
    clock.advance(1)
    claimed = store.claim_next("gpu-0", lease_seconds=60)
    assert claimed is not None and claimed.id == first.id
    assert claimed.status is Status.PROCESSING and claimed.worker_id == "gpu-0"
    assert claimed.attempts == 1 and claimed.started_at == clock.now
    assert claimed.lease_expires_at == clock.now + timedelta(seconds=60)
    assert store.claim_next("gpu-1") is not None
    assert store.claim_next("gpu-2") is None


def test_claim_batch_takes_oldest_in_order(store: Store, clock: FakeClock) -> None:
    ids = []
    for i in range(5):
        ids.append(new_job(store, f"p{i}").id)
        clock.advance(1)
    batch = store.claim_batch("gpu-0", 3)
    assert [g.id for g in batch] == ids[:3]
    assert all(g.status is Status.PROCESSING and g.worker_id == "gpu-0" for g in batch)
    assert [g.id for g in store.get_pending_generations()] == ids[3:]


def test_complete_records_file_and_merges_metadata(store: Store, clock: FakeClock) -> None:
    job = new_job(store, metadata={"bpm": 90, "genre": "lofi"})
    store.claim_next("gpu-0")
    clock.advance(12.5)
    done = store.complete_generation(
        job.id, file_path="2026/01/01/x.wav", file_size_bytes=1234, metadata={"genre": "jazz", "lufs": -16.0}
    )
    assert done.status is Status.COMPLETED and done.is_finished
    assert done.metadata == {"bpm": 90, "genre": "jazz", "lufs": -16.0}
    assert done.generation_time_seconds == pytest.approx(12.5)
    assert done.completed_at == clock.now and done.lease_expires_at is None
    assert store.get_generation(job.id) == done
    stats = store.get_database_stats()
    assert stats.by_status[Status.COMPLETED] == 1 and stats.total_file_bytes == 1234
    assert stats.average_generation_seconds == pytest.approx(12.5)


def test_complete_by_another_worker_is_lease_lost(store: Store, clock: FakeClock) -> None:
    job = new_job(store)
    store.claim_next("old", lease_seconds=10)
    clock.advance(11)
    assert store.requeue_expired().requeued == [job.id]
    store.claim_next("new")
    with pytest.raises(LeaseLost, match="'new'"):
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="old")
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, "old")
    assert store.get_generation(job.id).worker_id == "new"  # type: ignore[union-attr]


def test_heartbeat_extends_lease_only_for_owner(store: Store, clock: FakeClock) -> None:
    job = new_job(store)
    store.claim_next("gpu-0", lease_seconds=10)
    clock.advance(8)
    expires = store.heartbeat(job.id, "gpu-0", lease_seconds=10)
    assert expires == clock.now + timedelta(seconds=10)
    clock.advance(8)
    assert store.requeue_expired() == musicstore.Requeued([], [])
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, "intruder")


def test_fail_retries_until_attempts_run_out(store: Store) -> None:
    job = new_job(store)
    for _attempt in range(2):
        store.claim_next("w")
        assert store.fail(job.id, "CUDA out of memory", max_attempts=3) is Status.PENDING
    pending = store.get_generation(job.id)
    assert pending is not None and pending.error_message == "CUDA out of memory"
    assert pending.worker_id is None and pending.lease_expires_at is None
    store.claim_next("w")
    assert store.fail(job.id, "CUDA out of memory", max_attempts=3) is Status.FAILED
    failed = store.get_generation(job.id)
    assert failed is not None and failed.status is Status.FAILED and failed.attempts == 3


def test_fail_without_retry_is_final(store: Store) -> None:
    job = new_job(store)
    store.claim_next("w")
    assert store.fail(job.id, "bad prompt", retry=False) is Status.FAILED
    with pytest.raises(InvalidTransition, match="failed"):
        store.fail(job.id, "again")


def test_requeue_expired_fails_on_last_attempt(store: Store, clock: FakeClock) -> None:
    a, b = new_job(store, "a"), new_job(store, "b")
    store.claim_next("w", lease_seconds=5)
    store.claim_next("w", lease_seconds=50)
    clock.advance(6)
    result = store.requeue_expired(max_attempts=1)
    assert result.requeued == [] and result.failed == [a.id]
    assert store.get_generation(b.id).status is Status.PROCESSING  # type: ignore[union-attr]
    clock.advance(50)
    assert store.requeue_expired(max_attempts=2).requeued == [b.id]


def test_cancel_from_pending_and_processing_only(store: Store) -> None:
    a, b = new_job(store, "a"), new_job(store, "b")
    store.cancel(a.id, "user asked")
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == b.id
    store.cancel(b.id)
    assert store.get_generation(a.id).error_message == "user asked"  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition) as excinfo:
        store.cancel(a.id)
    assert excinfo.value.current == "cancelled"
    with pytest.raises(LeaseLost):
        store.heartbeat(b.id, "w")  # the worker learns of the cancel at its next heartbeat


def test_illegal_transitions_change_nothing(store: Store) -> None:
    job = new_job(store)
    before = store.get_generation(job.id)
    with pytest.raises(InvalidTransition):
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1)
    with pytest.raises(InvalidTransition):
        store.fail(job.id, "not claimed")
    with pytest.raises(InvalidTransition):
        store.update_generation_status(job.id, "completed")
    assert store.get_generation(job.id) == before


def test_update_generation_status_follows_the_machine(store: Store) -> None:
    job = new_job(store)
    store.claim_next("w")
    store.update_generation_status(job.id, "pending")
    assert store.get_generation(job.id).status is Status.PENDING  # type: ignore[union-attr]
    store.update_generation_status(job.id, Status.CANCELLED, error_message="dup")
    assert store.get_generation(job.id).status is Status.CANCELLED  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="unknown status 'done'"):
        store.update_generation_status(job.id, "done")


def test_delete_refuses_processing_rows(store: Store) -> None:
    job = new_job(store)
    store.claim_next("w")
    with pytest.raises(InvalidTransition, match="processing"):
        store.delete_generation(job.id)
    store.cancel(job.id)
    store.delete_generation(job.id)
    assert store.get_generation(job.id) is None
    assert store.count_generations() == 0
    assert store.get_prompt_by_text(job.prompt).used_count == 1  # type: ignore[union-attr]


def test_list_filters_pages_and_cursor(store: Store, clock: FakeClock) -> None:
    ids = []
    for i in range(7):
        ids.append(new_job(store, f"p{i}", model_name="a" if i % 2 else "b").id)
        clock.advance(1)
    newest_first = list(reversed(ids))
    page = store.list_generations(limit=3)
    assert [g.id for g in page.items] == newest_first[:3]
    second = store.list_generations(limit=3, cursor=page.next_cursor)
    assert [g.id for g in second.items] == newest_first[3:6]
    last = store.list_generations(limit=3, cursor=second.next_cursor)
    assert [g.id for g in last.items] == newest_first[6:] and last.next_cursor is None
    assert [g.id for g in store.list_generations(limit=2, offset=2).items] == newest_first[2:4]
    assert {g.model_name for g in store.list_generations(model_name="a").items} == {"a"}
    store.claim_next("w")
    assert [g.id for g in store.list_generations(status="processing").items] == [ids[0]]
    assert store.list_generations(status="pending", model_name="b").items[-1].id == ids[2]
    assert store.get_all_generations(limit=2) == page.items[:2]
    assert store.count_generations() == 7
    assert store.count_generations(status="pending") == 6
    assert store.count_generations(model_name="a") == 3
    assert store.count_generations(status="pending", model_name="b") == 3


def test_cursor_survives_equal_timestamps(store: Store) -> None:
    ids = {new_job(store, f"same instant {i}").id for i in range(5)}  # the fake clock does not move
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_generations(limit=2, cursor=cursor)
        seen += [g.id for g in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)


def test_paging_ends_on_the_last_page_without_an_empty_one(store: Store, clock: FakeClock) -> None:
    """For every count of rows and page size (full last pages included, some rows at one instant): walking
    the cursors reads every row once, newest first; every page but an empty table's holds rows, and only the
    last has no cursor (a full last page had one, leading to an empty page). Dead letters page alike."""
    ids: list[str] = []
    for n in range(8):
        for limit in range(1, 5):
            for status in (None, "pending"):
                seen: list[str] = []
                page = store.list_generations(status=status, limit=limit)
                while True:
                    assert page.items or not ids, (n, limit)
                    seen += [g.id for g in page.items]
                    if page.next_cursor is None:
                        break
                    assert len(page.items) == limit
                    page = store.list_generations(status=status, limit=limit, cursor=page.next_cursor)
                assert seen == list(reversed(ids)), (n, limit)
        ids.append(new_job(store, f"p{n}").id)
        if n % 3:
            clock.advance(1)
    for _ in range(2):
        claimed = store.claim_next("w")
        assert claimed is not None
        store.fail(claimed.id, "broken", max_attempts=1)
    dead = store.list_dead_letters(limit=2)
    assert len(dead.items) == 2 and dead.next_cursor is None


def test_bad_cursor_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_generations(cursor="not-a-cursor")


def test_prompts_are_counted_and_ranked(store: Store) -> None:
    for prompt, times in (("jazz", 3), ("lofi", 1), ("ambient", 2)):
        for _ in range(times):
            new_job(store, prompt)
    assert [(p.text, p.used_count) for p in store.get_most_used_prompts(2)] == [("jazz", 3), ("ambient", 2)]
    tracked = store.track_prompt_usage("lofi")
    assert tracked.used_count == 2
    assert store.get_prompt_by_text("never used") is None
    stats = store.get_database_stats()
    assert stats.unique_prompts == 3 and stats.prompt_uses == 7


def test_reset_needs_exact_confirmation(store: Store) -> None:
    new_job(store)
    with pytest.raises(ConfirmationRequired):
        store.reset_database(confirm="yes")
    assert store.count_generations() == 1
    store.reset_database(confirm=RESET_CONFIRMATION)
    stats = store.get_database_stats()
    assert stats.total == 0 and stats.unique_prompts == 0 and stats.prompt_uses == 0


def test_transaction_commits_together(store: Store) -> None:
    with store.transaction() as tx:
        a = new_job(tx, "a")
        b = store.create_generation("b", model_name="m", duration_seconds=1)  # joins the open transaction
    assert store.get_generation(a.id) is not None and store.get_generation(b.id) is not None


def test_exception_in_transaction_leaves_no_trace(store: Store, db_url: str) -> None:
    before = store.get_database_stats()
    with pytest.raises(RuntimeError, match="abort"), store.transaction() as tx:
        job = new_job(tx, "never stored")
        tx.track_prompt_usage("never stored either")
        raise RuntimeError("abort")
    assert store.get_generation(job.id) is None
    assert store.get_prompt_by_text("never stored") is None
    assert store.get_database_stats() == before
    with Store(db_url) as other:  # and another connection agrees
        assert other.count_generations() == 0


def test_read_only_transaction_refuses_writes(store: Store) -> None:
    with store.transaction(write=False) as tx:
        assert tx.count_generations() == 0
        with pytest.raises(InvalidInput, match="write=True"):
            new_job(tx)


def test_nested_transaction_is_refused(store: Store) -> None:
    with store.transaction(), pytest.raises(InvalidInput, match="already open"), store.transaction():
        pass


def test_compatibility_functions_run_the_same_operations(db_url: str) -> None:
    with musicstore.get_session(db_url) as session:
        job = musicstore.create_generation(session, "compat prompt", model_name="m", duration_seconds=5)
        assert musicstore.get_generation(session, job.id) == job
    store = musicstore.compat.default_store(db_url)
    assert musicstore.count_generations(store) == 1
    assert musicstore.get_all_generations(store)[0].id == job.id
    assert musicstore.get_pending_generations(store)[0].id == job.id
    assert musicstore.create_generation.args[0] is store.create_generation.operation  # type: ignore[attr-defined]
    assert musicstore.count_generations.args[0] is store.count_generations.operation  # type: ignore[attr-defined]


def test_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="migrate"):
        Store(f"sqlite:///{tmp_path / 'empty.db'}")
    opened = Store(f"sqlite:///{tmp_path / 'auto.db'}", migrate=True)
    assert opened.count_generations() == 0
    opened.close()


def test_store_sets_wal_and_pragmas(sqlite_url: str) -> None:
    conn = Store(sqlite_url)._connector.acquire()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.isolation_level is None


def test_unsupported_urls_are_refused() -> None:
    for url in ("sqlite:///:memory:", "mysql://x/y", "sqlite://relative.db"):
        with pytest.raises(InvalidInput):
            Store(url)


def test_busy_database_is_a_typed_error(sqlite_url: str) -> None:
    from musicstore import DatabaseBusy

    path = sqlite_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Store(sqlite_url, busy_timeout=0.05) as store, pytest.raises(DatabaseBusy, match="busy timeout"):
            new_job(store)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_pool_exhaustion_is_database_busy(postgres_url: str) -> None:
    """Another thread waiting past busy_timeout for the only pooled connection gets DatabaseBusy, not
    psycopg_pool's own PoolTimeout."""
    from concurrent.futures import ThreadPoolExecutor

    from musicstore import DatabaseBusy

    with opened(lambda: Store(postgres_url, busy_timeout=0.2, pool_size=1)) as store:  # connected first
        with store.transaction(), ThreadPoolExecutor(1) as other:  # holds the only connection
            waiting = other.submit(store.count_generations)
            with pytest.raises(DatabaseBusy, match="pool"):
                waiting.result()
        assert store.count_generations() == 0


def test_a_row_lock_held_past_busy_timeout_is_database_busy(postgres_url: str) -> None:
    """PostgreSQL: a write behind another transaction's row lock waits busy_timeout, then DatabaseBusy (as a
    SQLite write waits for the writer lock), and changes nothing; it did wait as long as the lock was held."""
    import threading
    import time

    from musicstore import DatabaseBusy, Status

    with Store(postgres_url) as holder, opened(lambda: Store(postgres_url, busy_timeout=0.3)) as waiter:
        job = new_job(holder)
        release = threading.Event()
        locked = threading.Event()

        outcome: list[BaseException | None] = []

        def hold_lock() -> None:
            with holder.transaction() as tx:
                tx.cancel(job.id)  # the row stays locked until the block ends
                locked.set()
                release.wait(30)

        holding = threading.Thread(target=hold_lock)
        holding.start()
        try:
            assert locked.wait(60)
            started = time.monotonic()

            def wait() -> None:
                try:
                    waiter.cancel(job.id, "second")
                    outcome.append(None)
                except BaseException as exc:
                    outcome.append(exc)

            waiting = threading.Thread(target=wait, daemon=True)
            waiting.start()
            waiting.join(30)
            elapsed = time.monotonic() - started
        finally:
            release.set()
            holding.join()
        assert outcome and isinstance(outcome[0], DatabaseBusy), outcome
        assert "busy timeout" in str(outcome[0])
        assert 0.25 < elapsed < 25  # its busy_timeout, not until the lock went (the test's release)
        after = waiter.get_generation(job.id)
        assert after is not None and after.status is Status.CANCELLED  # the holder's cancel, committed


def _unopenable_urls(tmp_path: Path, postgres_url: str) -> list[str]:
    (tmp_path / "a-file").write_text("not a folder")
    return [
        f"sqlite:///{tmp_path / 'a-file' / 'x.db'}",  # its folder cannot be made: a file is in the way
        f"sqlite:///{tmp_path}",  # a folder, not a database file
        postgres_url.rsplit("/", 1)[0] + "/no_such_database",
    ]


def test_a_database_that_cannot_be_opened_is_a_clear_error(tmp_path: Path, postgres_url: str) -> None:
    """A bad URL is a DatabaseError saying so (not a raw OSError, sqlite3 or psycopg error, and not
    DatabaseBusy telling the caller to raise pool_size)."""
    from musicstore import DatabaseBusy, DatabaseError

    for url in _unopenable_urls(tmp_path, postgres_url):
        with pytest.raises(DatabaseError) as caught:
            Store(url, busy_timeout=0.5)
        assert not isinstance(caught.value, DatabaseBusy), (url, caught.value)
        if "no_such_database" in url:
            assert "no_such_database" in str(caught.value) and "connect" in str(caught.value)


def test_a_transaction_refuses_use_after_it_ended(store: Store) -> None:
    """Its connection is back with the store (or the pool, perhaps lent to another thread): an operation on
    it would run outside any transaction."""
    with store.transaction() as tx:
        pass
    with pytest.raises(InvalidInput, match="ended"):
        new_job(tx)
    with pytest.raises(InvalidInput, match="ended"):
        tx.count_generations()
    assert store.count_generations() == 0


def test_closing_the_store_while_another_thread_is_in_a_transaction(postgres_url: str) -> None:
    """The holder's transaction commits and ends normally (it used to commit and then raise a raw ValueError
    from returning its connection to a new pool); the connection closes with the pool it came from."""
    import threading

    store = Store(postgres_url)
    inside, go_on = threading.Event(), threading.Event()
    outcome: list[object] = []

    def holder() -> None:
        try:
            with store.transaction() as tx:
                new_job(tx, "held")
                outcome.append(tx._conn)
                inside.set()
                go_on.wait()
            outcome.append("committed")
        except BaseException as exc:
            outcome.append(exc)
            inside.set()

    thread = threading.Thread(target=holder)
    thread.start()
    inside.wait()
    store.close()
    go_on.set()
    thread.join()
    assert outcome[1:] == ["committed"]
    assert getattr(outcome[0], "closed", False), "the connection outlived its closed pool"
    with Store(postgres_url) as reopened:
        assert reopened.count_generations() == 1


STORED = {
    "id": "01a20180-5e48-7dc6-afbf-cdf54fb09fcb",
    "prompt": "p",
    "model_name": "m",
    "model_version": None,
    "duration_seconds": 8.0,
    "sample_rate": 32_000,
    "channels": 2,
    "status": "completed",
    "created_at": 1_700_000_000_000_000,
    "file_path": "a.wav",
    "file_size_bytes": 10,
    "started_at": 1_700_000_001_000_000,
    "completed_at": 1_700_000_002_000_000,
    "generation_time_seconds": 1.5,
    "error_message": None,
    "attempts": 1,
    "worker_id": "w",
    "lease_expires_at": None,
    "metadata": '{"bpm":90}',
    "progress": 1.0,
    "stage": "decoding",
    "progress_at": 1_700_000_001_900_000,
    "priority": 3,
    "run_after": 1_700_000_000_500_000,
    "owner_key": "user-1",
    "idempotency_key": "request-1",
}
"""A completed generation as SQLite stores it, column by column."""


def test_rows_are_built_by_each_databases_own_column_order(tmp_path: Path) -> None:
    """``SELECT *`` lists columns in each database's own table order (a migrated table may differ from a new
    one), so a query's row builder, made from its columns on first use, serves one database only."""
    read = []
    for order in (list(STORED), list(STORED)[::-1]):
        conn = sqlite3.connect(tmp_path / f"{order[0]}.db")
        conn.execute(f"CREATE TABLE generations ({', '.join(order)})")
        marks = ", ".join("?" * len(order))
        values = [STORED[name] for name in order]
        conn.execute(f"INSERT INTO generations ({', '.join(order)}) VALUES ({marks})", values)
        query = load("sqlite", "sqlite3")["get_generation"]
        read.append(execute(conn, query, {"id": STORED["id"]}, Generation.reader))
        conn.close()
    assert read[0] == read[1] == Generation.from_row(STORED)


@given(order=st.permutations([*STORED, "prompt_digest"]))
def test_a_row_reader_builds_the_same_generation_in_any_column_order(order: list[str]) -> None:
    row = tuple(b"digest" if name == "prompt_digest" else STORED[name] for name in order)
    assert Generation.reader(order)(row) == Generation.from_row(STORED)


def test_rows_already_tuples_are_kept_and_other_rows_are_built() -> None:
    """``queries.rows_of``: the fetched list itself when ``columns`` picks every column in order and the
    driver's rows are tuples; a driver's other rows (``sqlite3.Row``) are still made tuples."""
    from musicstore.models import columns
    from musicstore.queries import rows_of

    build = columns("a", "b")(["a", "b"])
    assert build is tuple
    fetched = [("x", 1), ("y", 2)]
    assert rows_of(fetched, build) is fetched and rows_of([], build) == []
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    named = conn.execute("SELECT 'x' AS a, 1 AS b UNION ALL SELECT 'y', 2").fetchall()
    built = rows_of(named, build)
    assert built == fetched and all(type(row) is tuple for row in built)


@given(st.integers(min_value=-(10**15), max_value=10**17), st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_prompt_rows_decode_timestamps_as_to_datetime_does(micros: int, offset_minutes: int) -> None:
    """The prompt reader decodes inline what ``to_datetime`` decodes: integer µs (SQLite) or a driver's aware
    datetime in any zone (PostgreSQL), always as aware UTC."""
    from datetime import timezone

    from musicstore.models import Prompt, to_datetime

    moment = to_datetime(micros)
    zoned = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    read = Prompt.reader(["id", "text", "used_count", "first_used_at", "last_used_at"])
    for stored in (micros, zoned, moment):
        prompt = read((1, "t", 2, stored, stored))
        assert prompt == Prompt(1, "t", 2, to_datetime(stored), to_datetime(stored))
        assert repr(prompt) == repr(Prompt(1, "t", 2, to_datetime(stored), to_datetime(stored)))

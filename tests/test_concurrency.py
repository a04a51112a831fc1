"""Many processes on one SQLite file: no double claims, no lost jobs, exact prompt counts, no lock error."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from musicstore import Status, Store, migrate
from musicstore.migrate import shipped_migrations
from musicstore.testing import FakeClock

PROCESSES = 8
PROMPTS = [f"shared prompt {i}" for i in range(5)]

pytestmark = pytest.mark.slow


def _claim_until_empty(url: str, worker: str, start: Any) -> tuple[list[str], list[str]]:
    """Claim and complete until the queue is empty, once every worker is ready (``start``, a barrier: the
    pool's processes start one after the other, seconds apart on a loaded machine, and the first one could
    empty the queue alone); returns (claimed ids, errors)."""
    claimed: list[str] = []
    errors: list[str] = []
    with Store(url, busy_timeout=30) as store:
        start.wait(120)
        while True:
            try:
                job = store.claim_next(worker)
                if job is None:
                    return claimed, errors
                claimed.append(job.id)
                store.complete_generation(
                    job.id, file_path=f"{job.id}.wav", file_size_bytes=1, worker_id=worker
                )
            except Exception as exc:  # reported to the parent, which fails the test
                errors.append(f"{type(exc).__name__}: {exc}")
                return claimed, errors


def _create_many(url: str, seed: int, count: int) -> tuple[Counter[str], list[str]]:
    """Create ``count`` generations cycling through the shared prompts; returns (uses per prompt, errors)."""
    uses: Counter[str] = Counter()
    errors: list[str] = []
    with Store(url, busy_timeout=30) as store:
        for i in range(count):
            prompt = PROMPTS[(seed + i) % len(PROMPTS)]
            try:
                store.create_generation(prompt, model_name="m", duration_seconds=5)
                uses[prompt] += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    return uses, errors


def _pool() -> multiprocessing.pool.Pool:
    return multiprocessing.get_context("spawn").Pool(PROCESSES)


def test_parallel_claims_never_double_claim_or_lose_a_job(db_url: str) -> None:
    with Store(db_url) as store, store.transaction():
        created = {
            store.create_generation(f"job {i}", model_name="m", duration_seconds=5).id for i in range(1500)
        }
    with multiprocessing.get_context("spawn").Manager() as manager, _pool() as pool:
        start = manager.Barrier(PROCESSES)
        results = pool.starmap(_claim_until_empty, [(db_url, f"worker-{n}", start) for n in range(PROCESSES)])
    claimed = [gid for ids, _ in results for gid in ids]
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == created, "a job was lost"
    assert sum(1 for ids, _ in results if ids) > 1, "only one worker got work: the test proves nothing"
    with Store(db_url) as store:
        stats = store.get_database_stats()
        assert stats.by_status[Status.COMPLETED] == len(created) and stats.total == len(created)
        done = store.list_generations(limit=10, status="completed").items
        assert all(g.attempts == 1 for g in done)


def test_parallel_creates_count_prompts_exactly(db_url: str) -> None:
    with _pool() as pool:
        results = pool.starmap(_create_many, [(db_url, n, 150) for n in range(PROCESSES)])
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    expected = sum((uses for uses, _ in results), Counter())
    with Store(db_url) as store:
        for prompt in PROMPTS:
            tracked = store.get_prompt_by_text(prompt)
            assert tracked is not None and tracked.used_count == expected[prompt]
        stats = store.get_database_stats()
        assert stats.total == PROCESSES * 150 and stats.prompt_uses == PROCESSES * 150
        assert stats.unique_prompts == len(PROMPTS)


def test_concurrent_migrate_is_safe(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    with _pool() as pool:
        applied = pool.map(migrate, [url] * PROCESSES)
    shipped = len(shipped_migrations())  # one process applied them all, the others found nothing left
    assert sorted(len(ids) for ids in applied) == [0] * (PROCESSES - 1) + [shipped]
    with Store(url) as store:
        assert store.count_generations() == 0


def test_concurrent_migrate_is_safe_on_postgres(musicstore_postgres_server: Any) -> None:
    name = f"fresh_for_migrate_{os.getpid()}"
    musicstore_postgres_server.admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    url = musicstore_postgres_server.url(name)
    with _pool() as pool:
        applied = pool.map(migrate, [url] * PROCESSES)
    assert sorted(len(ids) for ids in applied) == [0] * (PROCESSES - 1) + [len(shipped_migrations())]
    with Store(url) as store:
        assert store.count_generations() == 0


LEASE = 60.0
"""The doomed worker's lease: far longer than the parent takes to see it unexpired on any machine, however
slow or loaded; its end is then reached by moving a clock past it, not by sleeping (a 1 s lease slept out
left the parent under a second, all but ~0.1 s of it spare here, to check that it had not run out)."""


def _claim_and_hang(url: str, claimed: Any) -> None:
    """A worker that claims a job and then hangs until it is killed."""
    with Store(url) as store:
        job = store.claim_next("doomed-worker", lease_seconds=LEASE)
        claimed.put(job.id if job else None)
        time.sleep(600)


def test_killed_worker_job_is_requeued_after_its_lease_and_completed_by_another(db_url: str) -> None:
    with Store(db_url) as store:
        job = store.create_generation("survives a SIGKILL", model_name="m", duration_seconds=5)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_claim_and_hang, args=(db_url, queue))
    worker.start()
    try:
        assert queue.get(timeout=60) == job.id
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
        worker.join()
    assert worker.exitcode == -signal.SIGKILL
    with Store(db_url) as store:
        held = store.get_generation(job.id)
        assert held is not None and held.worker_id == "doomed-worker" and held.lease_expires_at is not None
        assert store.requeue_expired().requeued == []  # the lease has not run out yet (real time)
    # the lease's end, reached by a clock moved just past it (the store's clock decides expiry)
    clock = FakeClock(held.lease_expires_at - timedelta(milliseconds=1))
    with Store(db_url, clock=clock) as store:
        assert store.requeue_expired().requeued == []  # a millisecond before it: still held
        clock.advance(0.002)
        assert store.requeue_expired().requeued == [job.id]
        rescued = store.claim_next("rescuer")
        assert rescued is not None and rescued.id == job.id and rescued.attempts == 2
        done = store.complete_generation(job.id, file_path="x.wav", file_size_bytes=1, worker_id="rescuer")
        assert done.is_completed and done.worker_id == "rescuer"


FORK_SCRIPT = """
import os, sys
from musicstore import Store

with Store(sys.argv[1]) as store:
    parent_conn = store._connector.acquire()
    store.count_generations()  # the parent's connection is open and used
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        own = store._connector.acquire() is not parent_conn
        job = store.create_generation("made in a forked child", model_name="m", duration_seconds=1.0)
        os.write(write, f"{own} {job.id}".encode())
        os._exit(0)
    os.close(write)
    own, job_id = os.read(read, 200).decode().split()
    _, status = os.waitpid(pid, 0)
    found = store.get_generation(job_id)
    keeps = store._connector.acquire() is parent_conn
    print(own, keeps, os.waitstatus_to_exitcode(status), found.prompt if found else None)
"""


def test_a_forked_child_opens_its_own_sqlite_connection(sqlite_url: str) -> None:
    """A connection opened before a fork is never used after it: SQLite forbids sharing one.

    The fork happens in a fresh single-threaded interpreter: forking pytest's process, which has threads,
    could deadlock the child.
    """
    ran = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, sqlite_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().split(maxsplit=3) == ["True", "True", "0", "made in a forked child"]

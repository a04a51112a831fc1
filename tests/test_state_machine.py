"""A hypothesis state machine drives the whole lifecycle against an in-memory model of the store."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from musicstore import RESET_CONFIRMATION, InvalidTransition, LeaseLost, NotFound, Status, Store
from tests.conftest import FakeClock

PROMPTS = ["lofi hip hop at 90 BPM", "ambient drone", "synthwave 120 BPM", "'; DROP TABLE prompts; --"]
WORKERS = ["gpu-0", "gpu-1", "gpu-2"]
MAX_ATTEMPTS = 2
LEASE = 30.0


@dataclass
class Job:
    status: Status
    created_at: datetime
    attempts: int = 0
    worker: str | None = None
    lease_expires_at: datetime | None = None


class StoreMachine(RuleBasedStateMachine):
    """Each run starts from an emptied database at ``url`` (set per backend by the test)."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = Store(self.url, clock=self.clock)
        self.store.reset_database(confirm=RESET_CONFIRMATION)
        self.jobs: dict[str, Job] = {}
        self.prompt_uses: Counter[str] = Counter()

    def teardown(self) -> None:
        self.store.close()

    def ids(self, *statuses: Status) -> list[str]:
        return sorted(i for i, job in self.jobs.items() if job.status in statuses)

    # --- rules --------------------------------------------------------------------------------------

    @rule(prompt=st.sampled_from(PROMPTS))
    def create(self, prompt: str) -> None:
        job = self.store.create_generation(prompt, model_name="m", duration_seconds=10)
        self.jobs[job.id] = Job(Status.PENDING, self.clock.now)
        self.prompt_uses[prompt] += 1

    @rule(worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> None:
        claimed = self.store.claim_next(worker, lease_seconds=LEASE)
        pending = self.ids(Status.PENDING)
        if not pending:
            assert claimed is None
            return
        expected = min(pending, key=lambda i: (self.jobs[i].created_at, i))
        assert claimed is not None and claimed.id == expected
        job = self.jobs[expected]
        job.status, job.worker, job.attempts = Status.PROCESSING, worker, job.attempts + 1
        job.lease_expires_at = self.clock.now + timedelta(seconds=LEASE)
        assert claimed.attempts == job.attempts and claimed.lease_expires_at == job.lease_expires_at

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), worker=st.sampled_from(WORKERS))
    def heartbeat(self, data: st.DataObject, worker: str) -> None:
        gid = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[gid]
        if job.status is Status.PROCESSING and job.worker == worker:
            self.store.heartbeat(gid, worker, lease_seconds=LEASE)
            job.lease_expires_at = self.clock.now + timedelta(seconds=LEASE)
        else:
            try:
                self.store.heartbeat(gid, worker, lease_seconds=LEASE)
            except LeaseLost:
                return
            raise AssertionError("heartbeat by a non-owner succeeded")

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), by_owner=st.booleans())
    def complete(self, data: st.DataObject, by_owner: bool) -> None:
        gid = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[gid]
        worker = job.worker if by_owner else "someone-else"
        if job.status is Status.PROCESSING and job.worker == worker:
            done = self.store.complete_generation(
                gid, file_path=f"{gid}.wav", file_size_bytes=100, worker_id=worker
            )
            assert done.status is Status.COMPLETED
            job.status, job.lease_expires_at = Status.COMPLETED, None
        else:
            try:
                self.store.complete_generation(
                    gid, file_path=f"{gid}.wav", file_size_bytes=100, worker_id=worker
                )
            except InvalidTransition:
                return
            raise AssertionError(f"completing a {job.status} job by {worker} succeeded")

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), retry=st.booleans())
    def fail(self, data: st.DataObject, retry: bool) -> None:
        gid = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[gid]
        if job.status is not Status.PROCESSING:
            try:
                self.store.fail(gid, "boom", retry=retry, max_attempts=MAX_ATTEMPTS)
            except InvalidTransition:
                return
            raise AssertionError(f"failing a {job.status} job succeeded")
        result = self.store.fail(gid, "boom", retry=retry, max_attempts=MAX_ATTEMPTS)
        expected = Status.PENDING if retry and job.attempts < MAX_ATTEMPTS else Status.FAILED
        assert result is expected
        job.status, job.lease_expires_at = expected, None
        job.worker = None if expected is Status.PENDING else job.worker

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        gid = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[gid]
        if job.status in (Status.PENDING, Status.PROCESSING):
            self.store.cancel(gid)
            job.status, job.lease_expires_at = Status.CANCELLED, None
        else:
            try:
                self.store.cancel(gid)
            except InvalidTransition:
                return
            raise AssertionError(f"cancelling a {job.status} job succeeded")

    @rule()
    def requeue_expired(self) -> None:
        result = self.store.requeue_expired(max_attempts=MAX_ATTEMPTS)
        expired = [
            i
            for i in self.ids(Status.PROCESSING)
            if self.jobs[i].lease_expires_at is not None and self.jobs[i].lease_expires_at <= self.clock.now  # type: ignore[operator]
        ]
        requeued = [i for i in expired if self.jobs[i].attempts < MAX_ATTEMPTS]
        failed = [i for i in expired if self.jobs[i].attempts >= MAX_ATTEMPTS]
        assert result.requeued == requeued and result.failed == failed
        for i in requeued:
            self.jobs[i].status, self.jobs[i].worker, self.jobs[i].lease_expires_at = (
                Status.PENDING,
                None,
                None,
            )
        for i in failed:
            self.jobs[i].status, self.jobs[i].lease_expires_at = Status.FAILED, None

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        gid = data.draw(st.sampled_from(sorted(self.jobs)))
        if self.jobs[gid].status is Status.PROCESSING:
            try:
                self.store.delete_generation(gid)
            except InvalidTransition:
                return
            raise AssertionError("deleting a processing job succeeded")
        self.store.delete_generation(gid)
        del self.jobs[gid]
        try:
            self.store.cancel(gid)
        except NotFound:
            return
        raise AssertionError("a deleted job could still be cancelled")

    # --- invariants -----------------------------------------------------------------------------------

    @invariant()
    def counts_per_status_match_the_model(self) -> None:
        stats = self.store.get_database_stats()
        expected = Counter(job.status for job in self.jobs.values())
        assert stats.by_status == {status: expected[status] for status in Status}
        assert stats.total == len(self.jobs) == self.store.count_generations()

    @invariant()
    def prompt_counts_are_exact(self) -> None:
        for prompt, uses in self.prompt_uses.items():
            tracked = self.store.get_prompt_by_text(prompt)
            assert tracked is not None and tracked.used_count == uses
        stats = self.store.get_database_stats()
        assert stats.unique_prompts == len(self.prompt_uses)
        assert stats.prompt_uses == sum(self.prompt_uses.values())

    @invariant()
    def every_row_is_in_exactly_one_state(self) -> None:
        seen: list[str] = []
        for status in Status:
            listed = [g.id for g in self.store.list_generations(status=status, limit=1000).items]
            assert sorted(listed) == self.ids(status)
            seen += listed
        assert len(seen) == len(set(seen)) == len(self.jobs)

    @invariant()
    def rows_match_the_model(self) -> None:
        for gid, job in self.jobs.items():
            row = self.store.get_generation(gid)
            assert row is not None
            assert (row.status, row.attempts) == (job.status, job.attempts)
            if job.status is Status.PROCESSING:
                assert row.worker_id == job.worker and row.lease_expires_at == job.lease_expires_at
            else:
                assert row.lease_expires_at is None


def test_lifecycle_state_machine(db_url: str) -> None:
    machine = type("Machine", (StoreMachine,), {"url": db_url})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=60, stateful_step_count=40, deadline=None)
    )

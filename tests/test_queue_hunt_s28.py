"""Session 28's queue hunt: the claim order, the limits and the queue's reads against a model, with what
``tests/test_queue_fairness.py``'s machine leaves out: claims with their own ``owner_limit`` each (None, 0,
1, 2), ``claim_batch`` (as that many ``claim_next`` would take), dead letters, ``replay`` and
``replay_all``, retries with a backoff (no jitter: the model knows each ``run_after``), ``requeue_expired``
of expired leases (retried or failed on their last attempt), negative priorities, and each pending job's
``queue_position`` (the jobs ahead in its lane) and ``queue_depth`` (pending, deferred, running by key),
on both backends."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from musicstore import RESET_CONFIRMATION, RetryPolicy, Status, Store
from musicstore.testing import FakeClock
from tests.test_queue_fairness import lanes_and_recount

KEYS = ["a", "b", None]
NEVER = float("-inf")  # a lane never served
POLICY = RetryPolicy(base_seconds=2, cap_seconds=5, jitter=0)
LEASE = 10.0
ATTEMPTS = 3
EPSILON = 1e-9  # the model's clock adds floats; the store's adds microseconds


@dataclass
class Job:
    key: str | None
    priority: int
    order: int  # creation order: (created_at, id) order
    run_after: float = 0.0
    status: str = "pending"
    started: float | None = None  # its started_at: set by a claim, kept by a retry and a replay
    attempts: int = 0
    lease: float = 0.0


@dataclass
class Model:
    jobs: dict[str, Job] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    now: float = 0.0
    served: dict[str, float] = field(default_factory=dict)  # a keyed lane's last claim

    def served_at(self, key: str | None) -> float:
        if key is not None:
            return self.served.get(key, NEVER)
        starts = [j.started for j in self.jobs.values() if j.key is None and j.started is not None]
        return max(starts, default=NEVER)

    def running(self, key: str | None) -> int:
        return sum(1 for j in self.jobs.values() if j.key == key and j.status == "processing")

    def due(self, job: Job) -> bool:
        return job.status == "pending" and job.run_after <= self.now + EPSILON

    def expected(self, claim_limit: int | None) -> str | None:
        """The job a claim with ``owner_limit=claim_limit`` must take (docs/queue.md: head priority, running
        jobs, last service, head age), or None."""
        heads = []
        for key in KEYS:
            limit = None if key is None else self.limits.get(key, claim_limit)
            if limit is not None and self.running(key) >= limit:
                continue
            ready = [(gid, j) for gid, j in self.jobs.items() if j.key == key and self.due(j)]
            if ready:
                gid, head = min(ready, key=lambda item: (-item[1].priority, item[1].order))
                heads.append((-head.priority, self.running(key), self.served_at(key), head.order, gid))
        return min(heads)[4] if heads else None

    def claimed(self, gid: str) -> None:
        job = self.jobs[gid]
        job.status, job.started, job.lease = "processing", self.now, self.now + LEASE
        job.attempts += 1
        if job.key is not None:
            self.served[job.key] = self.now

    def retried(self, job: Job, backoff: bool) -> None:
        """A failed attempt back in the queue: at once, or after POLICY's delay for its attempts."""
        job.status = "pending"
        delay = min(POLICY.cap_seconds, POLICY.base_seconds * 2 ** (job.attempts - 1))
        job.run_after = self.now + delay if backoff else 0.0

    def replayed(self, gid: str) -> None:
        job = self.jobs[gid]
        job.status, job.attempts, job.run_after = "pending", 0, 0.0


class QueueModel(RuleBasedStateMachine):
    url: str  # set by the test: one subclass per database

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = Store(self.url, clock=self.clock)
        self.store.reset_database(confirm=RESET_CONFIRMATION)
        for key in self.store.get_owner_limits():
            self.store.set_owner_limit(key, None)
        self.model = Model()
        self.created = 0

    def teardown(self) -> None:
        self.store.close()

    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now += seconds

    def pick(self, data: st.DataObject, *statuses: str) -> str | None:
        found = sorted(gid for gid, j in self.model.jobs.items() if j.status in statuses)
        return data.draw(st.sampled_from(found)) if found else None

    @rule(key=st.sampled_from(KEYS), priority=st.sampled_from([-2, 0, 0, 1]), later=st.sampled_from([0, 3]))
    def create(self, key: str | None, priority: int, later: int) -> None:
        run_after = self.clock.now + timedelta(seconds=later) if later else None
        job = self.store.create_generation(
            f"p{self.created}", model_name="m", duration_seconds=1, owner_key=key, priority=priority,
            run_after=run_after,
        )  # fmt: skip
        self.model.jobs[job.id] = Job(key, priority, self.created, self.model.now + later)
        self.created += 1
        self.tick(0.001)

    @rule(limit=st.sampled_from([None, 0, 1, 2]), tick=st.booleans())
    def claim(self, limit: int | None, tick: bool) -> None:
        if tick:
            self.tick(0.001)
        expected = self.model.expected(limit)
        claimed = self.store.claim_next("w", owner_limit=limit, lease_seconds=LEASE)
        assert (claimed.id if claimed else None) == expected
        if claimed is not None:
            self.model.claimed(claimed.id)

    @rule(limit=st.sampled_from([None, 1, 2]), count=st.integers(1, 4))
    def batch(self, limit: int | None, count: int) -> None:
        expected = []
        for _ in range(count):
            gid = self.model.expected(limit)
            if gid is None:
                break
            expected.append(gid)
            self.model.claimed(gid)
        claimed = self.store.claim_batch("w", count, owner_limit=limit, lease_seconds=LEASE)
        assert [job.id for job in claimed] == expected

    @rule(data=st.data(), how=st.sampled_from(["complete", "retry", "backoff", "dead"]))
    def finish(self, data: st.DataObject, how: str) -> None:
        gid = self.pick(data, "processing")
        if gid is None:
            return
        job = self.model.jobs[gid]
        if how == "complete":
            self.store.complete_generation(gid, file_path=f"{gid}.wav", file_size_bytes=1)
            job.status = "completed"
        elif how == "dead":
            assert self.store.fail(gid, "broken", retry=False) is Status.FAILED
            job.status = "failed"
        else:
            backoff = POLICY if how == "backoff" else None
            status = self.store.fail(gid, "again", max_attempts=ATTEMPTS, backoff=backoff)
            if job.attempts < ATTEMPTS:
                assert status is Status.PENDING
                self.model.retried(job, backoff is not None)
            else:
                assert status is Status.FAILED
                job.status = "failed"

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        gid = self.pick(data, "failed")
        if gid is not None:
            assert self.store.replay(gid).attempts == 0
            self.model.replayed(gid)

    @rule()
    def replay_all(self) -> None:
        replayed = self.store.replay_all()
        assert replayed == sorted(gid for gid, j in self.model.jobs.items() if j.status == "failed")
        for gid in replayed:
            self.model.replayed(gid)

    @rule(backoff=st.booleans())
    def requeue(self, backoff: bool) -> None:
        result = self.store.requeue_expired(max_attempts=ATTEMPTS, backoff=POLICY if backoff else None)
        jobs = self.model.jobs.items()
        expired = {gid: j for gid, j in jobs if j.status == "processing" and j.lease <= self.model.now}
        assert sorted(result.requeued) == sorted(gid for gid, j in expired.items() if j.attempts < ATTEMPTS)
        assert sorted(result.failed) == sorted(gid for gid, j in expired.items() if j.attempts >= ATTEMPTS)
        for job in expired.values():
            if job.attempts < ATTEMPTS:
                self.model.retried(job, backoff)
            else:
                job.status = "failed"

    @rule(key=st.sampled_from(["a", "b"]), limit=st.sampled_from([None, 0, 1, 3]))
    def set_limit(self, key: str, limit: int | None) -> None:
        self.store.set_owner_limit(key, limit)
        if limit is None:
            self.model.limits.pop(key, None)
        else:
            self.model.limits[key] = limit

    @rule(data=st.data(), delete=st.booleans())
    def cancel(self, data: st.DataObject, delete: bool) -> None:
        gid = self.pick(data, "pending", "processing")
        if gid is None:
            return
        self.store.cancel(gid)
        if delete:
            self.store.delete_generation(gid)
            del self.model.jobs[gid]
        else:
            self.model.jobs[gid].status = "cancelled"

    @rule(data=st.data())
    def position(self, data: st.DataObject) -> None:
        gid = self.pick(data, "pending")
        if gid is None:
            return
        job = self.model.jobs[gid]
        ahead = sum(
            1
            for other in self.model.jobs.values()
            if other.key == job.key
            and self.model.due(other)
            and (-other.priority, other.order) < (-job.priority, job.order)
        )
        assert self.store.queue_position(gid).ahead == ahead

    @rule(seconds=st.sampled_from([1, 2, 5, 11]))
    def wait(self, seconds: int) -> None:
        self.tick(seconds)

    @invariant()
    def depth_and_lanes(self) -> None:
        depth = self.store.queue_depth()
        jobs = self.model.jobs.values()
        assert depth.running == dict(Counter(j.key for j in jobs if j.status == "processing"))
        assert depth.pending == sum(1 for j in jobs if j.status == "pending")
        deferred = sum(1 for j in jobs if j.status == "pending" and not self.model.due(j))
        assert sum(level.deferred for level in depth.levels) == deferred
        kept, recount = lanes_and_recount(self.url)
        assert kept == recount


def test_claims_batches_retries_and_replays_follow_the_model(db_url: str) -> None:
    run_state_machine_as_test(
        type("Machine", (QueueModel,), {"url": db_url}),
        settings=settings(
            max_examples=8,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )

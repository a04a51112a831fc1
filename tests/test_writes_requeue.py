"""``requeue_expired`` as ``Store`` runs it without its generator (``runner.fixed_write``'s path for queries
that all return rows: no row reader until rows come back): the expired leases taken back, those with attempts
left requeued and the rest failed, each list sorted, whether or not earlier calls found nothing due."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore import Requeued, Store, ops
from musicstore.testing import FakeClock


def no_steps(*args: object, **kwargs: object) -> Any:
    raise AssertionError("the generator ran")


@settings(max_examples=30, deadline=None)
@given(
    cycled=st.integers(0, 3),
    leases=st.lists(st.sampled_from([30.0, 90.0]), min_size=0, max_size=6),
    max_attempts=st.sampled_from([1, 2, 3]),
    empty_first=st.booleans(),
)
def test_direct_requeue_takes_back_the_expired_leases(
    _musicstore_sqlite_template: Path,
    cycled: int,
    leases: list[float],
    max_attempts: int,
    empty_first: bool,
) -> None:
    """``cycled`` jobs were claimed and requeued once before (their next claim is attempt 2); then every
    job is claimed with a drawn lease and the clock moves 60 s: the leases of 30 s expired, those of 90 s
    did not. A job whose attempts reached ``max_attempts`` is failed, any other requeued."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.db"
        shutil.copy(_musicstore_sqlite_template, path)
        clock = FakeClock()
        with Store(f"sqlite:///{path}", clock=clock) as store, pytest.MonkeyPatch.context() as patch:
            patch.setattr(ops.requeue_expired, "steps", no_steps)
            old = [
                store.create_generation(f"old {n}", model_name="m", duration_seconds=8).id
                for n in range(cycled)
            ]
            for _ in old:
                assert store.claim_next("w0", lease_seconds=10.0) is not None
            clock.advance(11.0)
            assert store.requeue_expired(max_attempts=10) == Requeued(requeued=sorted(old), failed=[])
            new = [
                store.create_generation(f"new {n}", model_name="m", duration_seconds=8).id
                for n in range(len(leases))
            ]
            jobs = old + new
            expired: dict[str, int] = {}  # id -> attempts, for the leases that will have expired
            for lease in leases + [30.0] * (len(jobs) - len(leases)):
                job = store.claim_next("w1", lease_seconds=lease)
                assert job is not None
                if lease < 60.0:
                    expired[job.id] = job.attempts
            assert store.claim_next("w1") is None
            if empty_first:
                assert store.requeue_expired(max_attempts=max_attempts) == Requeued(requeued=[], failed=[])
            clock.advance(60.0)
            got = store.requeue_expired(max_attempts=max_attempts)
            requeued = sorted(gid for gid, attempts in expired.items() if attempts < max_attempts)
            failed = sorted(gid for gid, attempts in expired.items() if attempts >= max_attempts)
            assert got == Requeued(requeued=requeued, failed=failed)
            for gid in jobs:
                status = store.get_generation(gid).status  # type: ignore[union-attr]
                assert status == (
                    "pending" if gid in requeued else "failed" if gid in failed else "processing"
                )
            assert store.requeue_expired(max_attempts=max_attempts) == Requeued(requeued=[], failed=[])

"""The demo works only on the jobs it enqueued: it never claims, exports or completes anyone else's."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicstore import InvalidInput, Status, Store, migrate
from musicstore.cli.demo import run_demo


def _foreign(store: Store) -> str:
    job = store.create_generation(
        "someone else's job", model_name="m", duration_seconds=1, sample_rate=32_000, channels=1
    )
    return job.id


def test_a_database_with_pending_jobs_is_refused_and_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    migrate(url)
    with Store(url) as store:
        foreign = _foreign(store)
        before = store.get_generation(foreign)
    with pytest.raises(InvalidInput, match="1 pending job"):
        run_demo(url, count=1, output_root=tmp_path / "out", echo=lambda _: None)
    with Store(url) as store:
        assert store.get_generation(foreign) == before
        assert store.count_generations() == 1
    assert not (tmp_path / "out").exists()


def test_a_job_enqueued_by_someone_else_meanwhile_is_handed_back_and_the_demo_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    foreign: list[str] = []

    def enqueue_once(done: int) -> None:
        if not foreign:
            with Store(url) as other:
                foreign.append(_foreign(other))

    with pytest.raises(InvalidInput, match="handed it back"):
        run_demo(
            url,
            count=2,
            seconds=1.0,
            output_root=tmp_path / "out",
            echo=lambda _: None,
            progress=enqueue_once,
        )
    with Store(url) as store:
        job = store.get_generation(foreign[0])
        assert store.count_generations(status="completed") == 2
    assert job is not None and job.status is Status.PENDING and job.file_path is None
    assert len(list((tmp_path / "out").rglob("*.wav"))) == 2

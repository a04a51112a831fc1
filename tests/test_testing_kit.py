"""musicstore.testing: its strategies draw what they promise, and its fixtures give working stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import TRANSITIONS, Generation, Status, Store
from musicstore.ops import import_rows
from musicstore.testing import FakeClock
from musicstore.testing import strategies as ms

_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(request=ms.generation_requests(max_seconds=30, sample_rates=[44_100], channels=[2]))
def test_generation_requests_are_accepted_as_drawn(musicstore_store: Store, request: dict[str, Any]) -> None:
    job = musicstore_store.create_generation(**request)
    assert (job.sample_rate, job.channels) == (44_100, 2) and job.duration_seconds <= 30
    assert musicstore_store.get_generation(job.id) == job


@_SETTINGS
@given(row=ms.generations())
def test_generated_rows_satisfy_the_schema_and_read_back_equal(store: Store, row: Generation) -> None:
    """Every drawn row, in any status, passes the database's own CHECK constraints."""
    from musicstore.models import Prompt

    prompt = Prompt(0, row.prompt, 1, row.created_at, row.created_at)
    assert store.run(import_rows, [prompt], [row]) == 1
    assert store.get_generation(row.id) == row


@settings(max_examples=30, deadline=None)
@given(row=ms.generations(statuses=["processing", Status.COMPLETED]))
def test_generations_can_be_narrowed_by_status(row: Generation) -> None:
    assert row.status in (Status.PROCESSING, Status.COMPLETED)
    if row.is_processing:
        assert row.worker_id and row.lease_expires_at and row.started_at
        assert row.lease_expires_at > row.started_at >= row.created_at
    else:
        assert row.file_path and row.file_size_bytes is not None and row.completed_at
        assert Status.COMPLETED in TRANSITIONS[Status.PROCESSING]


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_audio_is_finite_unclipped_and_shaped(data: st.DataObject) -> None:
    clip = data.draw(ms.audio(channels=[2], max_seconds=1.0, transients=True))
    assert clip.dtype == np.float32 and clip.ndim == 2 and clip.shape[0] == 2
    assert np.isfinite(clip).all() and np.abs(clip).max() < 1.0
    batch = data.draw(ms.audio(channels=[1], batch=3, max_seconds=0.5))
    assert batch.shape[:2] == (3, 1)


def test_audio_as_tensor() -> None:
    torch = pytest.importorskip("torch")

    @settings(max_examples=5, deadline=None)
    @given(clip=ms.audio(as_tensor=True, max_seconds=0.5))
    def check(clip: Any) -> None:
        assert isinstance(clip, torch.Tensor) and clip.dtype == torch.float32

    check()


def test_bad_narrowing_is_refused() -> None:
    with pytest.raises(ValueError, match="sample_rates"):
        ms.generation_requests(sample_rates=[100])
    with pytest.raises(ValueError, match="channels"):
        ms.audio(channels=[9])
    with pytest.raises(ValueError, match="status"):
        ms.generations(statuses=[])


def test_fixtures_clean_up_and_clock_moves(
    musicstore_store: Store, musicstore_output_root: Path, musicstore_clock: FakeClock
) -> None:
    assert musicstore_output_root.is_dir() and not any(musicstore_output_root.iterdir())
    job = musicstore_store.create_generation("x", model_name="m", duration_seconds=1)
    musicstore_store.claim_next("w", lease_seconds=10)
    musicstore_clock.advance(10)
    assert musicstore_store.requeue_expired().requeued == [job.id]

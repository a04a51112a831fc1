"""A batch export's items never started go back in the queue (session 29).

``export_batch_generations`` interrupted (Ctrl-C, or any other error that ends its wait: ``SystemExit`` in
an item, the pool failing to start a thread) let the items running end, then raised, leaving every item it
never started claimed (processing) until its lease expired, while a ``Worker`` interrupted puts its job back
at once. Those items are now put back as the worker's are (``fail`` with ``max_attempts=attempts + 1`` and
the claim's worker id: a claim taken over, or a row cancelled meanwhile, is not touched), then the
interrupt is raised; a put-back that fails is noted on it. A clean batch writes nothing more.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import Generation, Status, Store, recording
from musicstore.audio.threads import Batch
from musicstore.errors import StorageError
from tests.conftest import new_job, until
from tests.ctrl_c import interrupted, slow_batch_export

_CLIP = {"duration_seconds": 1.0, "sample_rate": 8000, "channels": 1}
_ITEM_SECONDS = 4.0  # each item of the real process: its interrupts (0.5 s apart) land meanwhile


def _claimed(store: Store, count: int) -> list[Generation]:
    for i in range(count):
        new_job(store, f"song {i}", **_CLIP)
    return store.claim_batch("gpu-0", count)


def _audio(count: int) -> Any:
    return np.full((count, 1, 8000), 0.1, dtype=np.float32)


def _status(store: Store, generation: Generation) -> tuple[Status, str | None]:
    row = store.get_generation(generation.id)
    assert row is not None
    return row.status, row.worker_id


def _first_item_does(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """The batch's first item runs ``action(store)`` then exports as before; the others export at once."""
    exporting = recording.export_generation
    calls: list[int] = []

    def first(store: Store, generation: Generation, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            action(store)
        return exporting(store, generation, *args, **kwargs)

    monkeypatch.setattr(recording, "export_generation", first)


_BATCHES: list[Batch] = []
"""The batches ``export_batch_generations`` made in this test (``_seen_batches``)."""


@pytest.fixture(autouse=True)
def _seen_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    class Seen(Batch):
        def __init__(self) -> None:
            super().__init__()
            _BATCHES.append(self)

    monkeypatch.setattr(recording, "Batch", Seen)
    yield
    _BATCHES.clear()


def _until_stopped(store: Store) -> None:
    """Until the batch starts no more items (the main thread, told to stop, winds it up), up to 60 s: the
    item then ends. A fixed 0.5 s let a stall of the main thread leave the next item to start."""
    until(lambda: any(batch.stop.is_set() for batch in _BATCHES))


def _ctrl_c(store: Store) -> None:
    os.kill(os.getpid(), signal.SIGINT)  # the main thread, waiting for this item
    _until_stopped(store)


def _ctrl_c_with_put_backs(
    store: Store, batch: list[Generation], fail: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Ctrl-C ``batch``'s export (one item at a time) in its first item, its put-backs' ``store.fail`` being
    ``fail(the real fail, *its arguments)``; the notes on the ``KeyboardInterrupt`` it raised."""
    failing = store.fail
    monkeypatch.setattr(store, "fail", lambda *args, **kwargs: fail(failing, *args, **kwargs))
    _first_item_does(monkeypatch, _ctrl_c)
    with pytest.raises(KeyboardInterrupt) as raised:
        recording.export_batch_generations(store, batch, _audio(len(batch)), root=tmp_path, workers=1)
    return "\n".join(getattr(raised.value, "__notes__", []))


def test_a_ctrl_c_puts_back_the_items_not_started(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_url) as store:
        batch = _claimed(store, 3)
        _first_item_does(monkeypatch, _ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            recording.export_batch_generations(store, batch, _audio(3), root=tmp_path, workers=1)
        rows = [store.get_generation(g.id) for g in batch]
        assert [row.status for row in rows if row] == [Status.COMPLETED, Status.PENDING, Status.PENDING]
        for claimed, row in zip(batch[1:], rows[1:], strict=True):
            assert row is not None and row.file_path is None
            assert row.attempts == claimed.attempts  # counted, as for a worker's put-back
            assert "interrupted (KeyboardInterrupt)" in (row.error_message or "")
        again = store.claim_batch("gpu-1", 3)  # available to other workers at once
        assert sorted(g.id for g in again) == sorted(g.id for g in batch[1:])


def test_a_put_back_leaves_a_claim_taken_over_or_cancelled_alone(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_url) as store:
        batch = _claimed(store, 4)

        def taken(store: Store) -> None:
            store.fail(batch[2].id, "lost", worker_id="gpu-0")  # requeued...
            assert [g.id for g in store.claim_batch("gpu-1", 4)] == [batch[2].id]  # ...claimed by another
            store.cancel(batch[3].id)
            _ctrl_c(store)

        _first_item_does(monkeypatch, taken)
        with pytest.raises(KeyboardInterrupt):
            recording.export_batch_generations(store, batch, _audio(4), root=tmp_path, workers=1)
        assert [_status(store, g) for g in batch] == [
            (Status.COMPLETED, "gpu-0"),
            (Status.PENDING, None),
            (Status.PROCESSING, "gpu-1"),  # not touched
            (Status.CANCELLED, "gpu-0"),
        ]


def test_a_failed_put_back_is_noted_on_the_interrupt(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_url) as store:
        batch = _claimed(store, 3)

        def fail(failing: Any, generation_id: str, *args: Any, **kwargs: Any) -> Any:
            if generation_id == batch[1].id:
                raise StorageError("database is locked")
            return failing(generation_id, *args, **kwargs)

        notes = _ctrl_c_with_put_backs(store, batch, fail, tmp_path, monkeypatch)
        assert batch[1].id in notes and "StorageError" in notes and "lease" in notes, notes
        assert [_status(store, g)[0] for g in batch] == [Status.COMPLETED, Status.PROCESSING, Status.PENDING]


def test_a_system_exit_in_an_item_puts_back_the_items_not_started(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def leave(store: Store) -> None:
        raise SystemExit(3)

    with Store(db_url) as store:
        batch = _claimed(store, 3)
        _first_item_does(monkeypatch, leave)
        with pytest.raises(SystemExit):
            recording.export_batch_generations(store, batch, _audio(3), root=tmp_path, workers=1)
        # the item that raised it started: its row is its own (here, still processing)
        assert [_status(store, g)[0] for g in batch] == [Status.PROCESSING, Status.PENDING, Status.PENDING]


def test_an_error_in_one_item_leaves_the_others_to_run(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(store: Store) -> None:
        raise RuntimeError("boom")

    with Store(db_url) as store:
        batch = _claimed(store, 3)
        _first_item_does(monkeypatch, broken)
        outcomes = recording.export_batch_generations(store, batch, _audio(3), root=tmp_path, workers=1)
        assert isinstance(outcomes[0], RuntimeError)
        assert [isinstance(o, recording.Recorded) for o in outcomes] == [False, True, True]
        assert [_status(store, g)[0] for g in batch[1:]] == [Status.COMPLETED, Status.COMPLETED]


def test_a_pool_that_cannot_start_a_thread_puts_back_the_items_not_started(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adjust = ThreadPoolExecutor._adjust_thread_count
    calls: list[int] = []

    def adjusted(pool: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("can't start new thread")
        adjust(pool)

    with Store(db_url) as store:
        batch = _claimed(store, 3)
        _first_item_does(monkeypatch, _until_stopped)  # the second thread's start fails meanwhile
        monkeypatch.setattr(ThreadPoolExecutor, "_adjust_thread_count", adjusted)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            recording.export_batch_generations(store, batch, _audio(3), root=tmp_path, workers=2)
        assert [_status(store, g)[0] for g in batch] == [Status.COMPLETED, Status.PENDING, Status.PENDING]


def test_a_clean_batch_puts_nothing_back(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_url) as store:
        batch = _claimed(store, 3)
        failed: list[str] = []
        failing = store.fail

        def fail(generation_id: str, *args: Any, **kwargs: Any) -> Any:
            failed.append(generation_id)
            return failing(generation_id, *args, **kwargs)

        monkeypatch.setattr(store, "fail", fail)
        outcomes = recording.export_batch_generations(store, batch, _audio(3), root=tmp_path, workers=2)
        assert all(isinstance(o, recording.Recorded) for o in outcomes) and failed == []


def test_a_ctrl_c_before_any_item_started_puts_back_every_item(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:  # as the batch leaves the GPU
        raise KeyboardInterrupt

    with Store(db_url) as store:
        batch = _claimed(store, 2)
        monkeypatch.setattr(recording, "as_audio_batch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            recording.export_batch_generations(store, batch, _audio(2), root=tmp_path)
        assert [_status(store, g) for g in batch] == [(Status.PENDING, None)] * 2


def test_an_error_before_any_item_started_puts_the_rows_back(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 31: an ordinary error before any item started (here the tensors' conversion) puts every row
    back as a Ctrl-C there does; it left them claimed until their lease expired (session 29's expectation)."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no device")

    with Store(db_url) as store:
        batch = _claimed(store, 2)
        monkeypatch.setattr(recording, "as_audio_batch", broken)
        with pytest.raises(RuntimeError, match="no device"):
            recording.export_batch_generations(store, batch, _audio(2), root=tmp_path)
        assert [_status(store, g) for g in batch] == [(Status.PENDING, None)] * 2


def test_a_second_ctrl_c_stops_the_put_backs_and_says_so(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_url) as store:
        batch = _claimed(store, 4)

        def fail(failing: Any, generation_id: str, *args: Any, **kwargs: Any) -> Any:
            failing(generation_id, *args, **kwargs)
            raise KeyboardInterrupt  # as this put-back ended

        notes = _ctrl_c_with_put_backs(store, batch, fail, tmp_path, monkeypatch)
        assert "2 generations not started stay claimed" in notes, notes
        assert batch[2].id in notes and batch[3].id in notes and batch[1].id not in notes
        assert [_status(store, g)[0] for g in batch] == [
            Status.COMPLETED,
            Status.PENDING,
            Status.PROCESSING,
            Status.PROCESSING,
        ]


_RECORDING = slow_batch_export(_ITEM_SECONDS)


@pytest.mark.parametrize("interrupts", [1, 2])
def test_a_real_ctrl_c_puts_back_the_items_not_started(db_url: str, tmp_path: Path, interrupts: int) -> None:
    with Store(db_url) as store:
        jobs = [new_job(store, f"song {i}", **_CLIP) for i in range(4)]
    lines, err, _ = interrupted(_RECORDING, db_url, str(tmp_path / "audio"), interrupts=interrupts)
    running = {line.split()[1] for line in lines}
    with Store(db_url) as store:
        for job in jobs:
            row = store.get_generation(job.id)
            assert row is not None
            if job.id in running:
                assert row.status is Status.COMPLETED, (row, err)
            else:
                assert row.status is Status.PENDING and row.worker_id is None, (row, err)

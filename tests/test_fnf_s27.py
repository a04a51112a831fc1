"""Small defects left from session 26, each fixed with its test here."""

from __future__ import annotations

import asyncio
import math
import posixpath
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import AsyncStore, InvalidInput, NotFound, Status, StorageError, Store
from musicstore.audio.codecs import RenditionSpec
from musicstore.audio.renditions import render_bytes
from musicstore.cli import main
from musicstore.errors import DatabaseError, InvalidAudio
from musicstore.filestore import LocalFileStore
from musicstore.ops import Rendition
from musicstore.recording import export_generation
from musicstore.recording.placing import _Placing
from musicstore.rendering import _landed, peaks_name, render_peaks
from musicstore.storage_names import GENERATION_FIELD
from musicstore.store import Transaction
from musicstore.testing import FakeClock
from tests.conftest import new_job
from tests.test_record import OPTIONS, claimed, music, nan_audio

# 1. A transaction's claim_next(wait=...): the store's InvalidInput, not Python's TypeError.


def test_a_transactions_claim_refuses_a_wait_as_the_store_does(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        job = new_job(store)
        with store.transaction() as tx:
            with pytest.raises(InvalidInput, match=r"claim_next\(wait=\.\.\.\) cannot wait inside a"):
                tx.claim_next("w", wait=1)
            with pytest.raises(InvalidInput, match="wait"):
                tx.claim_next("w", wait=-1)
            claimed = tx.claim_next("w", wait=None, lease_seconds=60)  # no wait: the claim, as the store's
        assert claimed is not None and claimed.id == job.id
        assert store.get_generation(job.id).status == Status.PROCESSING  # type: ignore[union-attr]


def test_an_async_transactions_claim_refuses_a_wait_as_the_store_does(sqlite_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(sqlite_url) as store:
            job = await store.create_generation("lofi", model_name="m", duration_seconds=30.0)
            async with store.transaction() as tx:
                with pytest.raises(InvalidInput, match=r"claim_next\(wait=\.\.\.\) cannot wait inside"):
                    await tx.claim_next("w", wait=0)
                claimed = await tx.claim_next("w", lease_seconds=60)
            assert claimed is not None and claimed.id == job.id

    asyncio.run(main())


# 2. The queue table: an owner key spelled "(none)" is not shown as the no-key lane.


def _queue_table(url: str, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    assert main(["queue", "--database", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [line.split() for line in lines[4:]]  # the rows under the headers' rule


def test_the_queue_table_tells_a_key_named_none_from_the_no_key_lane(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(sqlite_url) as store:
        new_job(store)
        for key in ("(none)", '"(none)"', "(x", "user-42"):
            new_job(store, owner_key=key)
    owners = [row[1] for row in _queue_table(sqlite_url, capsys)]
    assert sorted(owners) == sorted(['"""(none)"""', '"(none)"', '"(x"', "(none)", "user-42"])
    assert len(set(owners)) == 5


# 3. Digital silence: every format records its true peak as silence's (−inf, stored NULL), Opus too.


@pytest.mark.parametrize(("name", "spec"), [("x.opus", {"format": "opus"}), ("x.mp3", {"format": "mp3"})])
def test_a_rendition_of_digital_silence_has_the_true_peak_of_silence(name: str, spec: dict[str, Any]) -> None:
    data, result = render_bytes(np.zeros((2, 32_000), np.float32), 32_000, name, RenditionSpec(**spec))
    assert result.status == "silent" and result.loudness == -math.inf
    assert result.true_peak == -math.inf  # Opus: −673 dBTP, its decoder's rounding of the zeros
    assert all(attempt.true_peak == -math.inf for attempt in result.attempts)
    assert result.as_metadata()["true_peak_dbtp"] is None
    assert len(data) > 0


# 5. render_peaks over its own earlier peaks (a replay's master before): a failure before they are replaced
# says nothing was put, not that the new peaks were put and left unrecorded.


def _stale_peaks(store: Store, root: Path) -> tuple[str, str, bytes]:
    """A completed generation (its master under ``root``) and, at its peaks' key, other peaks marked with its
    id (those of the master it had before a replay): its id, the key and those bytes."""
    job = claimed(store)
    recorded = export_generation(store, job, music(), root=root, options=OPTIONS, peaks=False)
    key = posixpath.join(
        posixpath.dirname(str(recorded.key)), peaks_name(Path(str(recorded.key)), 256, 8, False)
    )
    old = b'{"version": 2, "earlier": true}'
    LocalFileStore(root).put(key, old, metadata={GENERATION_FIELD: job.id})
    return job.id, key, old


def test_a_failed_replacement_of_stale_peaks_says_nothing_was_put(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "audio"
    gid, key, old = _stale_peaks(store, root)
    put = LocalFileStore.put

    def failing(self: LocalFileStore, *args: Any, overwrite: bool = False, **kwargs: Any) -> Any:
        if overwrite:
            raise StorageError("disk full")
        return put(self, *args, overwrite=overwrite, **kwargs)

    monkeypatch.setattr(LocalFileStore, "put", failing)
    with pytest.raises(StorageError, match="disk full") as caught:
        render_peaks(store, gid, root=root)
    note = " ".join(caught.value.__notes__)
    assert "were put" not in note and "nothing was put" in note and key in note
    assert (root / key).read_bytes() == old  # as it was


def test_stale_peaks_of_a_deleted_generation_are_not_said_to_be_put(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "audio"
    gid, key, _ = _stale_peaks(store, root)
    merge = Transaction.merge_metadata

    def deleted_first(self: Transaction, *args: Any, **kwargs: Any) -> Any:
        self.delete_generation(gid)
        return merge(self, *args, **kwargs)

    monkeypatch.setattr(Transaction, "merge_metadata", deleted_first)
    with pytest.raises(NotFound) as caught:
        render_peaks(store, gid, root=root)
    note = " ".join(caught.value.__notes__)
    assert "peaks put at" not in note and f"its earlier peaks at {key} were removed" in note
    assert not (root / key).exists()


# 6. Messages that showed Python's repr of a datetime or a timedelta.


def test_a_naive_datetime_is_shown_as_a_time_not_as_pythons_repr(sqlite_url: str) -> None:
    with Store(sqlite_url) as store, pytest.raises(InvalidInput) as caught:
        new_job(store, run_after=datetime(2030, 1, 2, 3, 4, 5))
    said = str(caught.value)
    assert "datetime.datetime" not in said and "2030-01-02 03:04:05" in said and "run_after" in said
    with pytest.raises(InvalidInput) as start:
        FakeClock(datetime(2026, 1, 1))
    assert "datetime.datetime" not in str(start.value) and "2026-01-01 00:00:00" in str(start.value)


@pytest.mark.parametrize(
    ("step", "shown"),
    [(timedelta(seconds=-1), "-1 day, 23:59:59"), (timedelta(days=999_999_999), "999999999 days")],
)
def test_the_fake_clocks_refusals_show_a_timedelta_in_words(step: timedelta, shown: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        FakeClock().advance(step)
    said = str(caught.value)
    assert "datetime.timedelta" not in said and shown in said


class _Unreadable:
    """A store whose every read raises ``DatabaseError`` (the connection lost after a commit)."""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("the server closed the connection")

    get_rendition = run


LOST = "DatabaseError: the server closed the connection"


def test_a_failed_reads_error_is_named_in_words_not_as_pythons_repr(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sqlite_url)
    job = claimed(store)

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("the server closed the connection")

    monkeypatch.setattr(store, "fail", lost)
    with pytest.raises(InvalidAudio) as caught:
        export_generation(store, job, nan_audio(), root=tmp_path)
    notes = " ".join(caught.value.__notes__)
    assert f"did not work either: {LOST}" in notes and "DatabaseError(" not in notes
    exc = RuntimeError("commit")
    placing = _Placing(
        store=_Unreadable(),  # type: ignore[arg-type]
        generation=job,
        worker=None,
        on_error="fail",
        max_attempts=3,
        generation_time_seconds=None,
        metadata={},
    )
    assert placing._landed(exc, "a.wav", "0" * 64) is None
    row = Rendition.__new__(Rendition)
    for name, value in {"id": "r", "generation_id": job.id, "storage_key": "a.mp3"}.items():
        object.__setattr__(row, name, value)
    assert _landed(_Unreadable(), row, exc) is None  # type: ignore[arg-type]
    assert all(f"unknown ({LOST})" in note for note in exc.__notes__) and len(exc.__notes__) == 2
    store.close()

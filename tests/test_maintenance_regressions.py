"""Regressions in maintenance other than backup: cleanup (retention), copy_files (relocate), copy_store
(transfer), usage statistics and the prompts' running totals, on both database backends."""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from musicstore import Generation, InvalidInput, StorageError, Store
from musicstore.filestore import FileStore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.transfer import check_rows, copy_store
from musicstore.maintenance.usage import disk_usage
from musicstore.ops import RESET_CONFIRMATION
from musicstore.ops.storage import get_storage, record_storage
from musicstore.validate import MAX_PAGE
from tests.conftest import FakeClock, new_job
from tests.test_maintenance_s3 import DATA, RENDITION, in_bucket, keys
from tests.test_totals import MODELS, PROMPTS, assert_totals_are_a_recount, every_generation


def done(store: Any, root: Path, path: str, size: int = 10, **kwargs: Any) -> Generation:
    """A completed generation recording ``path`` (a file of ``size`` bytes under ``root``)."""
    job = new_job(store, **kwargs)
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.id == job.id
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(b"\0" * size)
    result: Generation = store.complete_generation(job.id, file_path=path, file_size_bytes=size)
    return result


def test_the_cutoff_is_exclusive_to_the_microsecond(db_url: str, tmp_path: Path) -> None:
    """ "created before now - older_than": a row created exactly at the cutoff stays, one a microsecond
    earlier goes, on both backends."""
    clock = FakeClock(datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:
        early = done(store, tmp_path, "a.wav")
        clock.advance(1e-6)
        edge = done(store, tmp_path, "b.wav")
        clock.advance(timedelta(days=30).total_seconds())
        plan = cleanup(store, tmp_path, older_than=timedelta(days=30))
        assert [d.id for d in plan.deleted] == [early.id]
        applied = cleanup(store, tmp_path, older_than=timedelta(days=30), dry_run=False)
        assert [d.id for d in applied.deleted] == [early.id]
        kept = store.get_generation(edge.id)
        assert kept is not None and kept.is_completed


def test_a_dry_run_says_what_the_run_deletes_when_rows_sharing_a_file_span_pages(
    store: Store, tmp_path: Path
) -> None:
    """Two rows recording one file, on two pages: the run deletes both rows and then the file; its dry run
    must say so (it said kept_shared twice: each page saw the other page's row as staying)."""
    first = done(store, tmp_path, "shared.wav")
    second = done(store, tmp_path, "shared.wav")
    plan = cleanup(store, tmp_path, statuses=["completed"], batch=1)
    applied = cleanup(store, tmp_path, statuses=["completed"], batch=1, dry_run=False)
    assert [d.id for d in applied.deleted] == [first.id, second.id]
    assert [d.file_action for d in applied.deleted] == ["kept_shared", "deleted"]
    assert not (tmp_path / "shared.wav").exists()
    assert [d.file_action for d in plan.deleted] == ["kept_shared", "would_delete"]
    assert (plan.files_deleted, plan.bytes_freed) == (applied.files_deleted, applied.bytes_freed) == (1, 10)


def test_a_dry_run_in_a_bucket_says_what_the_run_deletes_when_rows_sharing_an_object_span_pages(
    store: Store, objects: FileStore
) -> None:
    first = in_bucket(store, objects, key="shared.wav")
    second = in_bucket(store, objects, key="shared.wav")
    plan = cleanup(store, objects, statuses=["completed"], batch=1)
    assert [d.file_action for d in plan.deleted] == ["kept_shared", "would_delete"]
    applied = cleanup(store, objects, statuses=["completed"], batch=1, dry_run=False)
    assert [(d.id, d.file_action) for d in applied.deleted] == [
        (first.id, "kept_shared"),
        (second.id, "deleted"),
    ]
    assert (
        (plan.files_deleted, plan.bytes_freed)
        == (applied.files_deleted, applied.bytes_freed)
        == (1, len(DATA))
    )
    assert "shared.wav" not in keys(objects)


OTHER_TEXT = [
    ("generations", "stage", "decoding\x00"),
    ("generations", "owner_key", "user\x00"),
    ("generations", "idempotency_key", "click\x00"),
    ("generations", "storage_url", "s3://bucket/mu\x00sic"),
    ("renditions", "storage_key", "2026/01/01/x\x00.mp3"),
    ("renditions", "profile", "stream\x00ing"),
]


@pytest.mark.parametrize("case", OTHER_TEXT, ids=[f"{t}.{c}" for t, c, _ in OTHER_TEXT])
def test_copy_store_checks_every_column_before_it_copies(
    sqlite_url: str, target_url: str, clock: FakeClock, case: tuple[str, str, str]
) -> None:
    """copy_store promises to check every row first and copy nothing when one cannot be stored: a NUL in
    a generation's stage, owner or idempotency key, storage URL or checksum, or in a rendition's text, got
    past the check, so the copy into PostgreSQL failed with a DatabaseError after earlier pages were in."""
    table, column, value = case
    with Store(sqlite_url, clock=clock) as source:
        for i in range(5):
            new_job(source, f"prompt {i}", owner_key="user", idempotency_key=f"click-{i}")
        job = source.claim_next("w")
        assert job is not None
        source.report_progress(job.id, "w", 0.5, stage="decoding")
        made = source.complete_generation(job.id, file_path="a/b.wav", file_size_bytes=8)
        source.run(record_storage, job.id, storage_url="s3://bucket/music", key="a/b.wav", checksum="ab" * 32)
        source.create_rendition(
            made.id,
            storage_key="a/b.streaming.0123abcd.mp3",
            file_size_bytes=4,
            checksum="cd" * 32,
            **RENDITION,
        )
        row_id = job.id if table == "generations" else source.list_renditions(job.id)[0].id
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
        with Store(target_url) as target:
            with pytest.raises(InvalidInput, match=rf"{table[:-1]} '?{row_id}'?: .*{column}"):
                copy_store(source, target, batch=2)
            assert target.count_generations() == 0 and target.get_most_used_prompts(10) == []


def test_prompt_and_generation_totals_stay_a_recount_through_copies_deletes_and_cleanups(
    sqlite_url: str, target_url: str, tmp_path: Path
) -> None:
    """Hypothesis: any sequence of creates, claims, completions, cancels, deletes and cleanups on a source,
    copy_store runs into a target (the copy rerun while the source changes), and deletes, cleanups and
    resets of the target: on both stores every trigger-kept total (prompts and their uses included) is a
    recount of the rows, and each prompt the target holds counts at least its generations there."""
    clock = FakeClock()
    root = tmp_path / "audio"
    root.mkdir()
    source = Store(sqlite_url, clock=clock)
    target = Store(target_url, clock=clock)

    class Copies(RuleBasedStateMachine):
        @initialize()
        def empty(self) -> None:
            for store in (source, target):
                store.reset_database(confirm=RESET_CONFIRMATION)

        @rule(prompt=PROMPTS, model=MODELS)
        def create(self, prompt: str, model: str) -> None:
            clock.advance(3600)
            new_job(source, prompt, model_name=model)

        @rule(size=st.integers(0, 1000))
        def complete(self, size: int) -> None:
            job = source.claim_next("w")
            if job is not None:
                source.complete_generation(job.id, file_path=f"{job.id}.wav", file_size_bytes=size)

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            live = [g for g in every_generation(source) if not g.is_finished]
            if live:
                source.cancel(data.draw(st.sampled_from(live)).id, "no longer wanted")

        @rule(data=st.data(), on_target=st.booleans())
        def delete(self, data: st.DataObject, on_target: bool) -> None:
            store = target if on_target else source
            deletable = [g for g in every_generation(store) if not g.is_processing]
            if deletable:
                store.delete_generation(data.draw(st.sampled_from(deletable)).id)

        @rule(on_target=st.booleans(), hours=st.integers(0, 10))
        def retention(self, on_target: bool, hours: int) -> None:
            store = target if on_target else source
            cleanup(store, root, older_than=timedelta(hours=hours), dry_run=False)

        @rule(batch=st.integers(1, 4))
        def copy(self, batch: int) -> None:
            copy_store(source, target, batch=batch)

        @rule()
        def reset_target(self) -> None:
            target.reset_database(confirm=RESET_CONFIRMATION)

        @invariant()
        def totals_are_a_recount(self) -> None:
            for store in (source, target):
                assert_totals_are_a_recount(store)
            held = Counter(g.prompt for g in every_generation(target))
            for prompt in target.get_most_used_prompts(MAX_PAGE):
                assert prompt.used_count >= held[prompt.text]

    try:
        run_state_machine_as_test(
            Copies,
            settings=settings(
                max_examples=15,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            ),
        )
    finally:
        source.close()
        target.close()


def test_copy_store_refuses_what_is_not_a_store_or_a_callback_before_copying(
    sqlite_url: str, tmp_path: Path
) -> None:
    """copy_store took anything: an AsyncStore or a URL failed with AttributeError or a never-awaited
    coroutine, and a progress that is not callable raised TypeError after the first page was copied. Now
    InvalidInput says which, before anything is copied (as the other maintenance functions do)."""
    import asyncio

    from musicstore import AsyncStore

    other = f"sqlite:///{tmp_path / 'target.db'}"
    with Store(sqlite_url) as source, Store(other, migrate=True) as target:
        new_job(source)
        with pytest.raises(InvalidInput, match="progress must be callable"):
            copy_store(source, target, progress="every page")  # type: ignore[arg-type]
        assert target.count_generations() == 0 and target.get_most_used_prompts(10) == []

        async def check() -> None:
            async_store = AsyncStore(other)
            try:
                for wrong in (async_store, other, None):
                    with pytest.raises(InvalidInput, match="Store"):
                        copy_store(source, wrong)  # type: ignore[arg-type]
                    with pytest.raises(InvalidInput, match="Store"):
                        copy_store(wrong, target)  # type: ignore[arg-type]
                    with pytest.raises(InvalidInput, match="Store"):
                        check_rows(wrong)  # type: ignore[arg-type]
            finally:
                await async_store.close()

        asyncio.run(check())
        assert target.count_generations() == 0


def test_a_dry_run_of_copy_files_counts_a_copy_left_by_a_killed_run_as_there(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    """A row with no checksum (recorded before 0006) whose file the export wrote (no checksum kept beside
    it), its copy already in the bucket from a run killed before the row changed: the run keeps the copy
    and moves the row, but its dry run said the key "exists with other bytes" and would be skipped."""
    root = tmp_path / "audio"
    made = done(store, root, "2026/01/01/take.wav", size=300)
    assert store.run(get_storage, made.id).checksum is None
    objects.put("2026/01/01/take.wav", (root / "2026/01/01/take.wav").read_bytes())  # the killed run's copy
    plan = copy_files(store, objects, source=root, dry_run=True)
    assert (plan.skipped_count, plan.rows_updated, plan.objects_present, plan.objects_copied) == (0, 1, 1, 0)
    report = copy_files(store, objects, source=root)
    assert (report.skipped_count, report.rows_updated, report.objects_present, report.objects_copied) == (
        0, 1, 1, 0,
    )  # fmt: skip
    assert store.run(get_storage, made.id).storage_url == objects.url


def test_copy_files_creates_no_folder_for_a_mistyped_source_or_a_refused_call(
    store: Store, objects: FileStore, tmp_path: Path
) -> None:
    """--source names the folder of old rows: a typo made that folder (empty) and skipped every row as
    missing there; and a call refused for its source (an s3:// one) had made the target folder already.
    Now a missing source folder is a StorageError and a refused call writes nothing."""
    root = tmp_path / "audio"
    made = done(store, root, "2026/01/01/take.wav")
    with pytest.raises(StorageError, match="does not exist"):
        copy_files(store, objects, source=tmp_path / "audoi")
    assert not (tmp_path / "audoi").exists()
    with pytest.raises(InvalidInput, match="source is the folder of rows recorded before 0006"):
        copy_files(store, tmp_path / "elsewhere", source=objects)
    assert not (tmp_path / "elsewhere").exists()
    assert copy_files(store, objects, source=root).rows_updated == 1
    assert store.run(get_storage, made.id).storage_url == objects.url


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a.wav", "b.wav", "c/d.wav", "./a.wav", None]),
            st.sampled_from(["done", "failed"]),
            st.booleans(),
        ),
        min_size=1, max_size=10,
    ),
    batch=st.integers(1, 4),
    budget=st.none() | st.integers(0, 100),
    statuses=st.sampled_from([["completed"], ["failed"], ["completed", "failed"]]),
)  # fmt: skip
def test_a_dry_run_reports_what_the_run_then_does(
    store: Store,
    tmp_path: Path,
    *,
    rows: list[tuple[str | None, str, bool]],
    batch: int,
    budget: int | None,
    statuses: list[str],
) -> None:
    """Hypothesis: rows sharing files or not, files present or not, in pages of any size, with or without a
    byte budget: the dry run's report is the run's, but for the actions' tense."""
    store.reset_database(confirm=RESET_CONFIRMATION)
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    for path, outcome, present in rows:
        job = new_job(store)
        assert store.claim_next("w") is not None
        if outcome == "failed" or path is None:
            store.fail(job.id, "boom", retry=False)
            continue
        if present:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(b"\0" * 10)
        store.complete_generation(job.id, file_path=path, file_size_bytes=10)
    options: dict[str, Any] = {"statuses": statuses, "batch": batch, "max_total_bytes": budget}
    plan = cleanup(store, root, **options)
    applied = cleanup(store, root, dry_run=False, **options)
    tense = {"would_delete": "deleted"}
    assert [(d.id, tense.get(d.file_action, d.file_action)) for d in plan.deleted] == [
        (d.id, d.file_action) for d in applied.deleted
    ]
    assert (plan.rows_deleted, plan.files_deleted, plan.bytes_freed, plan.skipped_count) == (
        applied.rows_deleted, applied.files_deleted, applied.bytes_freed, applied.skipped_count,
    )  # fmt: skip
    assert (plan.total_bytes_after, plan.budget_met) == (applied.total_bytes_after, applied.budget_met)


def test_disk_usage_counts_a_rendition_under_its_generations_status_on_a_folder_as_in_a_bucket(
    store: Store, where: FileStore
) -> None:
    """docs/maintenance: disk_usage's by_status counts renditions with their generation's status. In a
    bucket it did; on a folder a rendition (found by its path, as its name is not its generation's master)
    was counted under "recorded". Both now say "completed", and the other figures agree too."""
    job = new_job(store)
    assert store.claim_next("w") is not None
    key = f"{job.created_at:%Y/%m/%d}/{job.id}.wav"
    info = where.put(key, b"RIFF" + b"\1" * 96)
    store.complete_generation(job.id, file_path=key, file_size_bytes=100)
    store.run(record_storage, job.id, storage_url=where.url, key=key, checksum=info.checksum or "")
    mp3 = b"ID3" + b"\2" * 47
    made = where.put(f"{job.created_at:%Y/%m/%d}/{job.id}.streaming.0123abcd.mp3", mp3)
    store.create_rendition(
        job.id, storage_key=made.key, file_size_bytes=50, checksum=made.checksum or "", **RENDITION
    )
    where.put(f"{job.created_at:%Y/%m/%d}/{job.id}.peaks.256.8.json", b"{}" * 5)
    gone = "0b6f5c2e-1111-4222-8333-944455556666"
    where.put(f"2026/01/01/{gone}.wav", b"x" * 7)
    where.put(f"2026/01/01/{gone}.peaks.256.8.json", b"y" * 3)
    where.put("notes/readme.txt", b"z" * 11)
    queued = new_job(store)
    where.put(f"2026/01/01/{queued.id}.wav", b"w" * 13)
    usage = disk_usage(store, where)
    figures = [usage.recorded, usage.orphans, usage.other, usage.in_progress]
    assert [(b.files, b.bytes) for b in figures] == [(3, 160), (2, 10), (1, 11), (1, 13)]
    assert {k: (b.files, b.bytes) for k, b in usage.by_status.items()} == {
        "completed": (3, 160), "orphan": (2, 10), "other": (1, 11), "pending": (1, 13),
    }  # fmt: skip


def test_a_demo_stopped_midway_leaves_none_of_its_jobs_queued_and_the_next_demo_runs(tmp_path: Path) -> None:
    """SIGTERM (or Ctrl-C) while the demo exports: its jobs not done were left pending (and the one in
    hand processing), and every later demo on that database was refused ('holds N pending job(s) the demo
    did not enqueue', though it had). The demo now cancels its unfinished jobs as it stops."""
    import os
    import signal
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path}/demo.db"
    root = tmp_path / "out"
    command = [sys.executable, "-m", "musicstore", "demo", "-d", url, "-o", str(root)]
    process = subprocess.Popen(
        [*command, "--count", "300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while not any(root.rglob("*.wav")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143 and err.strip() == "musicstore: terminated", err
    with Store(url) as store:
        assert store.count_generations(status="pending") == 0
        assert store.count_generations(status="processing") == 0
        done = store.count_generations(status="completed")
        assert done < 300 and store.count_generations(status="cancelled") == 300 - done
    again = subprocess.run(
        [*command, "--count", "1"], check=False, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("delete", [False, True])
def test_reconcile_repairs_an_orphan_whose_name_is_not_utf8(
    store: Store, tmp_path: Path, delete: bool
) -> None:
    """A file name of bytes that are not UTF-8 (``\\xff\\xfe.wav``, read back with surrogates) is an orphan
    no row can record; ``reconcile(repair=True)`` (``musicstore reconcile --repair``) failed on it with a
    UnicodeEncodeError traceback (its lock query sent the name as a generation id) and repaired nothing after
    it. It is now quarantined or deleted like any orphan."""
    import os

    root = tmp_path / "out"
    root.mkdir()
    name = os.fsdecode(b"\xff\xfe.wav")
    (root / name).write_bytes(b"x")
    (root / "z.wav").write_bytes(b"y")  # walked after it: repaired too
    quarantine = tmp_path / "q"
    report = reconcile(
        store, root, repair=True, delete_orphans=delete, quarantine=None if delete else quarantine
    )
    assert report.orphan_count == 2 and not report.errors
    assert {o.action for o in report.orphans} == {"deleted" if delete else "quarantined"}
    assert not any(root.iterdir())
    if not delete:
        assert sorted(p.name for p in quarantine.iterdir()) == sorted([name, "z.wav"])


def _display_width(text: str) -> int:
    import unicodedata

    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def test_cli_tables_stay_aligned_with_wide_characters(tmp_path: Path) -> None:
    """'Human output as aligned tables': cells were padded by code points, so a file name in CJK (two
    columns each on a terminal) or with a combining accent pushed or pulled every column after it; the
    reconcile table of orphans showed their bytes and action out of line. Padding is by display width."""
    import subprocess
    import sys

    from musicstore.cli.table import table

    lines = table([["曲子.wav", "1", "reported"], ["e\u0301.wav", "22", "reported"], ["ab.wav", "333", "x"]],
                  ["path", "bytes", "action"])  # fmt: skip
    starts = {_display_width(line[: line.index("  " + line.split()[-1])]) for line in lines[2:]}
    assert len(starts) == 1, lines  # the last column starts at one terminal column on every row
    url = f"sqlite:///{tmp_path}/x.db"
    root = tmp_path / "out"
    root.mkdir()
    for name in ("音乐作品.wav", "b.wav"):
        (root / name).write_bytes(b"x")
    Store(url, migrate=True).close()
    result = subprocess.run(
        [sys.executable, "-m", "musicstore", "reconcile", "-d", url, "-o", str(root)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 4, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.endswith("reported")]
    assert len(rows) == 2 and len({_display_width(row) for row in rows}) == 1, rows

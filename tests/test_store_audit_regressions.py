"""Acceptance audit of issue 2 (the job store foundation): black-box findings through the public API and the
CLI, on SQLite and PostgreSQL, sync and async, that the earlier suites did not cover."""

from __future__ import annotations

import asyncio
import copy
import math
import multiprocessing
import os
import pickle
import sqlite3
import subprocess
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from musicstore import (
    AsyncStore,
    Cancelled,
    DatabaseBusy,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    MusicstoreError,
    NotFound,
    StorageError,
    Store,
    migrate,
)
from musicstore.filestore.base import ObjectNotFound
from musicstore.maintenance.backup import backup, restore
from musicstore.models import prompt_digest
from musicstore.testing import strategies as ms


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def _leave_wal(path: Path) -> None:
    """What a copy of the file made elsewhere (a backup, another tool) can be: a rollback-journal database."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    finally:
        conn.close()


def test_migrate_puts_an_up_to_date_database_in_wal_mode(tmp_path: Path) -> None:
    """migrate() on a migrated database that is not in WAL mode (a restored backup: backups are single
    self-contained files) leaves it in WAL mode, as it does a new one. Before, an up-to-date database returned
    [] having only read which migrations were applied, and stayed in its rollback journal."""
    database = tmp_path / "generations.db"
    url = f"sqlite:///{database}"
    migrate(url)
    _leave_wal(database)
    assert migrate(url) == []
    assert _journal_mode(database) == "wal"


def test_musicstore_migrate_puts_a_restored_backup_in_wal_mode(tmp_path: Path) -> None:
    """The operator's path: restore a backup, then `musicstore migrate` before the workers start."""
    source = f"sqlite:///{tmp_path / 'live.db'}"
    with Store(source, migrate=True) as store:
        store.create_generation("kept", model_name="m", duration_seconds=1)
    backup(source, tmp_path / "backup.db")
    restored = tmp_path / "restored.db"
    restore(tmp_path / "backup.db", f"sqlite:///{restored}")
    result = subprocess.run(
        [sys.executable, "-m", "musicstore", "migrate", "--database", f"sqlite:///{restored}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert _journal_mode(restored) == "wal"
    with Store(f"sqlite:///{restored}") as store:
        assert store.get_prompt_by_text("kept") is not None


def test_tox_has_the_test_lint_and_type_environments() -> None:
    """`tox -e test`, `tox -e lint`, `tox -e type`: the three environments the project promises. Before, the
    test environment was only `py311`, and `tox -e test` failed ('provided environments not found')."""
    tox = Path(sys.executable).parent / "tox"
    if not tox.exists():
        pytest.skip("tox is not installed here (the dev group installs it)")
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(
        [str(tox), "-l"], cwd=root, capture_output=True, text=True, check=False, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert {"test", "lint", "type"} <= set(listed.stdout.split())
    shown = subprocess.run(
        [str(tox), "config", "-e", "test,lint,type", "-k", "commands"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "pytest" in shown.stdout and "ruff check" in shown.stdout and "mypy --strict" in shown.stdout


def _conflicting_create(url: str) -> str:
    """In a child process: create with a key the parent used for another prompt (IdempotencyConflict)."""
    with Store(url) as store:
        store.create_generation("another", model_name="m", duration_seconds=1, idempotency_key="req-1")
    return "created"


_ERRORS: list[MusicstoreError] = [
    InvalidTransition("m", current="completed"),
    LeaseLost("m", current="processing", owner="gpu-1"),
    Cancelled("m", current="cancelled", owner="gpu-1"),
    IdempotencyConflict("m", existing_id="01a24303-2459-7714-aae2-b0ad0ae1046a"),
    NotFound("m"),
    InvalidInput("m"),
    DatabaseBusy("m"),
    StorageError("m"),
    StorageError(28, "No space left on device"),
    ObjectNotFound("m"),
]


@pytest.mark.parametrize("error", _ERRORS, ids=lambda error: f"{type(error).__name__}{len(error.args)}")
def test_errors_survive_pickling_with_their_fields(error: MusicstoreError) -> None:
    """A process pool sends a worker's exception to the parent pickled, and copy.copy copies it so: each error
    comes back as itself, message and fields. Before, IdempotencyConflict (its existing_id keyword-only and
    required) could not be unpickled or copied: TypeError, and a ProcessPoolExecutor broke."""
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(again) is type(error) and str(again) == str(error) and again.args == error.args
        assert vars(again) == vars(error)
        if isinstance(error, OSError):
            assert isinstance(again, OSError)
            assert (again.errno, again.strerror) == (error.errno, error.strerror)


def test_an_idempotency_conflict_in_a_pool_process_reaches_the_parent(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        first = store.create_generation("one", model_name="m", duration_seconds=1, idempotency_key="req-1")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool, pytest.raises(IdempotencyConflict) as raised:
        pool.submit(_conflicting_create, sqlite_url).result(timeout=120)
    assert raised.value.existing_id == first.id


def _exact(value: Any) -> Any:
    """A JSON value as a tree of (type, value) in order: equal only for the same types (1, 1.0 and True
    compare equal in Python), the same key order and the same float bits (-0.0)."""
    if isinstance(value, dict):
        return ("dict", [(key, _exact(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_exact(item) for item in value])
    return (type(value).__name__, repr(value))


def test_metadata_and_prompts_read_back_exactly_through_store_and_async_store(db_url: str) -> None:
    """Metadata written by either driver reads back through both with the same types, key order and float
    bits as given (and a completion's merge too); the prompt verbatim. The round-trip tests elsewhere compare
    with ==, for which 1, 1.0 and True are one value."""
    loop = asyncio.new_event_loop()
    opened = loop.run_until_complete(AsyncStore.open(db_url))
    store = Store(db_url)
    try:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(metadata=ms.metadata(), extra=ms.metadata(), prompt=ms.prompts(max_size=200))
        def round_trip(metadata: dict[str, Any], extra: dict[str, Any], prompt: str) -> None:
            made = store.create_generation(prompt, model_name="m", duration_seconds=1, metadata=metadata)
            made_async = loop.run_until_complete(
                opened.create_generation(prompt, model_name="m", duration_seconds=1, metadata=metadata)
            )
            for job in (made, made_async):
                assert _exact(job.metadata) == _exact(metadata)
                for read in (
                    store.get_generation(job.id),
                    loop.run_until_complete(opened.get_generation(job.id)),
                ):
                    assert read is not None and read.prompt == prompt
                    assert _exact(read.metadata) == _exact(metadata)
            claimed = store.claim_next("gpu-0")
            while claimed is not None:
                done = loop.run_until_complete(
                    opened.complete_generation(
                        claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=1, metadata=extra
                    )
                )
                merged = _exact({**claimed.metadata, **extra})
                assert _exact(done.metadata) == merged
                assert _exact(store.get_generation(claimed.id).metadata) == merged  # type: ignore[union-attr]
                claimed = store.claim_next("gpu-0")

        round_trip()
    finally:
        store.close()
        loop.run_until_complete(opened.close())
        loop.close()


_BAD_ROWS: list[dict[str, object]] = [
    {"status": "done"},
    {"status": "processing"},  # no worker, no lease
    {"status": "completed"},  # no file
    {"sample_rate": 0},
    {"sample_rate": -1},
    {"duration_seconds": 0.0},
    {"duration_seconds": -3.0},
    {"duration_seconds": math.nan},
    {"duration_seconds": math.inf},
    {"channels": 0},
    {"channels": 9},
    {"metadata": "[1, 2]"},
    {"metadata": "null"},
    {"metadata": "not json"},
    {"prompt": "not the prompt its digest names"},
    {"model_name": ""},
]


@pytest.mark.parametrize("change", _BAD_ROWS, ids=repr)
def test_postgres_schema_refuses_what_the_library_refuses(
    postgres_url: str, change: dict[str, object]
) -> None:
    """The constraints are in PostgreSQL's schema too, not only in Python: a row written by hand that breaks
    one is refused and nothing is written (tests/test_schema.py checks SQLite's)."""
    import psycopg

    with Store(postgres_url) as store:
        store.create_generation("p", model_name="m", duration_seconds=1)  # the prompt row the good row names
    good: dict[str, object] = {
        "prompt": "p",
        "model_name": "m",
        "duration_seconds": 30.0,
        "sample_rate": 32000,
        "channels": 2,
        "status": "pending",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "metadata": "{}",
        "prompt_digest": prompt_digest("p"),
    }

    def insert(row: dict[str, object]) -> None:
        columns = ", ".join(row)
        marks = ", ".join(f"%({name})s" for name in row)
        conn.execute(f"INSERT INTO generations ({columns}) VALUES ({marks})", row)

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error):
            insert({**good, **change, "id": str(uuid.uuid4())})
        insert({**good, "id": str(uuid.uuid4())})  # the good row passes
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (2,)


def test_a_returned_generation_keeps_what_was_stored_when_the_caller_changes_its_metadata(
    db_url: str,
) -> None:
    """What create_generation, complete_generation and merge_metadata return is the row as stored: the
    caller changing its own metadata object afterwards (a template reused per request, a list appended to)
    changes neither. Before, the returned metadata shared the caller's nested lists and objects, so it
    changed with them and no longer equalled get_generation's."""
    with Store(db_url) as store:
        template: dict[str, Any] = {"tags": ["lofi"], "seed": {"value": 1}}
        made = store.create_generation("p", model_name="m", duration_seconds=1, metadata=template)
        template["tags"].append("jazz")
        template["seed"]["value"] = 2
        assert made.metadata == {"tags": ["lofi"], "seed": {"value": 1}}
        assert store.get_generation(made.id) == made
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
        figures: dict[str, Any] = {"loudness": [-16.0]}
        done = store.complete_generation(claimed.id, file_path="a.wav", file_size_bytes=1, metadata=figures)
        figures["loudness"].append(-14.0)
        assert done.metadata["loudness"] == [-16.0]
        assert store.get_generation(done.id) == done
        peaks: dict[str, Any] = {"peaks": {"key": "a.json"}}
        merged = store.merge_metadata(done.id, peaks)
        peaks["peaks"]["key"] = "b.json"
        assert merged.metadata["peaks"] == {"key": "a.json"}
        assert store.get_generation(done.id) == merged

    async def through_async_store() -> None:
        async with AsyncStore.open(db_url) as opened:
            again: dict[str, Any] = {"tags": ["a"]}
            made = await opened.create_generation("q", model_name="m", duration_seconds=1, metadata=again)
            again["tags"].append("b")
            assert made.metadata == {"tags": ["a"]} and await opened.get_generation(made.id) == made

    asyncio.run(through_async_store())

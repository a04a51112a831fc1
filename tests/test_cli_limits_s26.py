"""``musicstore owner-limits``, ``set-owner-limit KEY N|none`` and ``queue-position ID``: the per-key limits
and a job's place in the queue from a shell, as ``store.get_owner_limits``, ``set_owner_limit`` and
``queue_position`` give them (through the real entry point, on both backends)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musicstore import Store
from musicstore.cli import EXIT_NOT_FOUND, EXIT_USAGE
from tests.conftest import new_job
from tests.test_cli import one_line_error, run

MISSING = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"


def test_set_owner_limit_pauses_limits_and_clears_a_key(db_url: str) -> None:
    """What the command sets is what the claim obeys: a paused key's job is passed over, a limit of 1 lets one
    job of the key run at a time, ``none`` hands the key back to the claim's ``owner_limit``."""
    with Store(db_url) as store:
        alice = [new_job(store, f"alice {i}", owner_key="alice") for i in range(2)]
        bob = new_job(store, "bob", owner_key="bob")
    paused = run("set-owner-limit", "alice", "0", "--database", db_url, "--json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) == {"owner_key": "alice", "max_running": 0}
    with Store(db_url) as store:
        assert store.get_owner_limits() == {"alice": 0}
        first = store.claim_next("gpu-0")
        assert first is not None and first.id == bob.id
        assert store.claim_next("gpu-1") is None  # alice is paused
    one = run("set-owner-limit", "alice", "1", "--database", db_url)
    assert one.returncode == 0 and one.stdout.strip() == "alice: at most 1 processing at once"
    with Store(db_url) as store:
        taken = store.claim_next("gpu-1")
        assert taken is not None and taken.id == alice[0].id
        assert store.claim_next("gpu-2") is None  # alice's one slot is taken
    listed = run("owner-limits", "--database", db_url, "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"owner_limits": {"alice": 1}}
    table = run("owner-limits", "--database", db_url)
    assert table.returncode == 0 and "alice" in table.stdout and "1" in table.stdout
    cleared = run("set-owner-limit", "alice", "none", "--database", db_url)
    assert cleared.returncode == 0 and "no limit of its own" in cleared.stdout
    with Store(db_url) as store:
        assert store.get_owner_limits() == {}
        last = store.claim_next("gpu-2")
        assert last is not None and last.id == alice[1].id
    empty = run("owner-limits", "--database", db_url)
    assert empty.returncode == 0 and "no owner key has a limit" in empty.stdout


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "1000001", "", "١٢"])
def test_a_limit_that_is_not_one_is_a_usage_error_and_changes_nothing(sqlite_url: str, value: str) -> None:
    with Store(sqlite_url) as store:
        store.set_owner_limit("alice", 2)
    result = run("set-owner-limit", "alice", value, "--database", sqlite_url)
    assert result.returncode == EXIT_USAGE and "is not a limit" in result.stderr
    with Store(sqlite_url) as store:
        assert store.get_owner_limits() == {"alice": 2}


def test_an_owner_key_the_library_refuses_is_one_line_and_changes_nothing(sqlite_url: str) -> None:
    result = run("set-owner-limit", " ", "1", "--database", sqlite_url)
    assert result.returncode == 1
    one_line_error(result, "owner_key")
    with Store(sqlite_url) as store:
        assert store.get_owner_limits() == {}


def test_queue_position_says_what_the_api_says(db_url: str) -> None:
    with Store(db_url) as store:
        jobs = [new_job(store, f"song {i}", owner_key="alice") for i in range(3)]
        done = store.claim_next("gpu-0")
        assert done is not None
        store.complete_generation(done.id, file_path="a.wav", file_size_bytes=1)  # a throughput
        expected = store.queue_position(jobs[2].id)
    result = run("queue-position", jobs[2].id, "--database", db_url, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["ahead"] == expected.ahead == 1
    assert shown["status"] == "pending" and shown["capped"] is False
    assert shown["eta_seconds"] == expected.eta_seconds and shown["eta_seconds"] is not None
    assert shown["window_seconds"] == expected.window_seconds
    table = run("queue-position", jobs[2].id, "--database", db_url)
    assert table.returncode == 0 and "1 ahead in its lane" in table.stdout and "done in about" in table.stdout
    finished = run("queue-position", jobs[0].id, "--database", db_url)
    assert finished.returncode == 0 and "completed, not in the queue" in finished.stdout
    missing = run("queue-position", MISSING, "--database", db_url)
    assert missing.returncode == EXIT_NOT_FOUND
    one_line_error(missing, MISSING)


def test_migrate_takes_the_apis_lock_timeout(tmp_path: Path) -> None:
    """``musicstore migrate --lock-timeout`` is ``migrate(url, lock_timeout=...)``: with another process's
    migration lock held, ``1s`` fails after a second with one line and applies nothing; a value that is not a
    duration is a usage error; once the lock is gone it applies the migrations."""
    import os
    import sqlite3
    import time

    from tests.test_schema import _rollback

    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    for wrong in ("soon", "2d"):
        bad = run("migrate", "--lock-timeout", wrong, "--database", url)
        assert bad.returncode == EXIT_USAGE and "--lock-timeout" in bad.stderr, bad.stderr
    assert run("migrate", "--lock-timeout", "0s", "--database", url).returncode == 0
    _rollback(url, "0015")  # a migration to apply (an up-to-date database takes no lock)
    with sqlite3.connect(path) as conn:  # a live holder (this process): what a migrating process leaves
        conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, '2026-01-02', ?)", (os.getpid(),))
    started = time.monotonic()
    held = run("migrate", "--lock-timeout", "1s", "--database", url)
    assert time.monotonic() - started < 30 and held.returncode == 1
    one_line_error(held, "lock")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM yoyo_lock")
    done = run("migrate", "--lock-timeout", "1s", "--database", url, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["applied"][0].startswith("0015")


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_an_empty_positional_path_is_a_usage_error_that_speaks_of_no_option(
    sqlite_url: str, command: str
) -> None:
    """``backup ''`` said "must not be empty (leave the option out for the default)": DEST is no option and
    has no default."""
    result = run(command, "", "--database", sqlite_url)
    assert result.returncode == EXIT_USAGE and "must not be empty" in result.stderr
    assert "leave the option out" not in result.stderr


def test_cleanup_older_than_before_the_calendar_says_so_in_words(sqlite_url: str, tmp_path: Path) -> None:
    """``cleanup --older-than 999999999d`` printed Python's ``datetime.timedelta(days=999999999)``."""
    result = run("cleanup", "--older-than", "999999999d", "-o", str(tmp_path), "--database", sqlite_url)
    assert result.returncode == 1
    one_line_error(result, "999999999 days", "before the year 1")
    assert "datetime.timedelta" not in result.stderr

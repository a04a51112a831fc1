"""Closing a SQLite store while other threads use it (session 27): sqlite3 closing a connection under a
statement another thread is running crashed the process (a segfault); a lent connection is now closed by
its thread as it gives it back."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from musicstore import Store, migrate
from musicstore.errors import InvalidInput

_READERS_AT_CLOSE = textwrap.dedent(
    """
    import sys, threading, time
    from musicstore import Store, migrate
    from musicstore.errors import InvalidInput
    from musicstore.metrics import read_metrics

    url = f"sqlite:///{sys.argv[1]}"
    migrate(url)
    store = Store(url)
    for i in range(200):
        store.create_generation(f"p{i}", model_name="m", duration_seconds=1)
    refused, deadline = [], time.monotonic() + 60

    def read():
        while time.monotonic() < deadline:
            try:
                read_metrics(store)
            except InvalidInput as exc:  # the store is closed
                refused.append(str(exc))
                return

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    store.close()
    for t in threads:
        t.join()
    print(len(refused), refused[0] if refused else "")
    """
)


@pytest.mark.parametrize("attempt", range(3))
def test_closing_under_reading_threads_does_not_crash_the_process(tmp_path: Path, attempt: int) -> None:
    """Four threads reading in a loop, the store closed under them: the process lives (it was killed by a
    segfault at each try) and each reader is refused with the closed store's error."""
    run = subprocess.run(
        [sys.executable, "-c", _READERS_AT_CLOSE, str(tmp_path / "db.sqlite")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    count, message = run.stdout.strip().split(" ", 1)
    assert count == "4"
    assert "closed" in message


def test_a_connection_lent_at_close_is_closed_as_its_thread_gives_it_back(tmp_path: Path) -> None:
    """A thread inside a transaction when the store closes keeps its connection to the end of it (its
    commit lands), then the connection is closed; an idle thread's is closed by ``close`` itself."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    store = Store(url)
    connector = store._connector
    idle_conn: list[sqlite3.Connection] = []
    busy_conn: list[sqlite3.Connection] = []
    inside, closed = threading.Event(), threading.Event()

    def idle() -> None:
        store.count_generations()
        idle_conn.append(connector._local.conn)

    def busy() -> None:
        with store.transaction() as tx:
            tx.create_generation("kept", model_name="m", duration_seconds=1)
            busy_conn.append(connector._local.conn)
            inside.set()
            closed.wait(60)
            tx.create_generation("kept too", model_name="m", duration_seconds=1)

    first = threading.Thread(target=idle)
    first.start()
    first.join()
    second = threading.Thread(target=busy)
    second.start()
    assert inside.wait(60)
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        idle_conn[0].execute("SELECT 1")  # closed by close()
    busy_conn[0].execute("SELECT 1")  # still open: its thread is using it
    closed.set()
    second.join()
    with pytest.raises(sqlite3.ProgrammingError):
        busy_conn[0].execute("SELECT 1")  # closed as it came back
    with pytest.raises(InvalidInput, match="closed"):
        store.count_generations()
    again = Store(url)
    try:
        assert sorted(g.prompt for g in again.list_generations().items) == ["kept", "kept too"]
    finally:
        again.close()

"""Session 39: a migration's session on a database or role with a short ``statement_timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from musicstore import MigrationError
from musicstore.backends.postgres_settings import session_refused
from musicstore.migrate import migrate


def test_a_cancelled_first_statement_is_named_for_the_statement_timeout() -> None:
    why = session_refused(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert "statement_timeout set for this role or database" in why
    assert session_refused(psycopg.OperationalError("connection refused")) == ""


def test_a_migration_under_a_short_statement_timeout_never_says_check_the_url(
    scratch_database: tuple[Any, str],
) -> None:
    """The migration's session lifts statement_timeout before its other settings; where the server cancels
    even that, the error names the setting (it said 'check the URL')."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET statement_timeout = '1ms'")
    for _ in range(3):
        try:
            migrate(server.url(name))
        except MigrationError as exc:
            assert "check the URL" not in str(exc)
            assert "statement timeout" in str(exc)


def test_a_migration_waits_lock_timeout_for_a_file_another_connection_holds(tmp_path: Path) -> None:
    """The file's check waited sqlite3's own 5 s whatever ``lock_timeout``, then said 'check the URL'."""
    path = tmp_path / "held.db"
    migrate(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        why = "another connection held it locked past lock_timeout"
        with pytest.raises(MigrationError, match=why) as raised:
            migrate(f"sqlite:///{path}", lock_timeout=0.5)
        assert time.monotonic() - started < 4
        assert "check the URL" not in str(raised.value)
    finally:
        holder.close()
    assert migrate(f"sqlite:///{path}") == []


def test_a_requests_own_peaks_record_never_draws_another_generations_waveform(tmp_path: Path) -> None:
    """``metadata["peaks"]`` asked for by a request stays on a row an export with ``peaks=False`` completes:
    the dashboard drew the file it named (another generation's waveform for a silent clip), or read another
    generation's master whole as a 'normalised peaks file' and answered 500."""
    from starlette.testclient import TestClient

    from musicstore import Store
    from musicstore.recording import export_generation
    from musicstore.web import create_app

    url, root, rate = f"sqlite:///{tmp_path / 'x.db'}", str(tmp_path / "audio"), 8_000
    migrate(url)
    with Store(url) as store:

        def made(metadata: dict[str, Any] | None, clip: Any, peaks: bool) -> str:
            row = store.create_generation(
                "p", model_name="m", duration_seconds=1, sample_rate=rate, channels=1, metadata=metadata
            )
            claimed = store.claim_next("w")
            assert claimed is not None and claimed.id == row.id
            export_generation(store, claimed, clip, root=root, peaks=peaks)
            return row.id

        tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
        victim = made(None, tone, True)
        theirs = store.get_generation(victim)
        assert theirs is not None and theirs.file_path is not None
        silent = np.zeros(rate, dtype=np.float32)
        spoofed = made({"peaks": {"key": theirs.metadata["peaks"]["key"]}}, silent, False)
        master = {"peaks": {"key": "x.json", "normalized": {"key": theirs.file_path}}}
        spoofed_normalized = made(master, silent, False)
        with TestClient(create_app(store, root=root)) as client:
            drawn = client.get(f"/api/generations/{spoofed}/peaks")
            assert drawn.status_code == 200 and max(drawn.json()["peaks"]) == 0  # its own silence
            assert max(client.get(f"/api/generations/{victim}/peaks").json()["peaks"]) > 0.1
            other = client.get(f"/api/generations/{spoofed_normalized}/peaks")
            assert other.status_code == 200 and max(other.json()["peaks"]) == 0


# --- DNS rebinding: a dashboard without a token answers only an address, localhost or a name given ---------


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        ((), "rebind.attacker.example:8765", 400),
        ((), "127.0.0.1:8765", 200),
        ((), "localhost:8765", 200),
        ((), "[::1]:8765", 200),
        ((), "10.1.2.3", 200),
        (("dash.example.com",), "DASH.example.com:443", 200),
        (("dash.example.com",), "dash.example.com.evil.example", 400),
        (("*.corp.example",), "music.corp.example", 200),
        (("*.corp.example",), "corp.example", 400),
        (("*.corp.example",), "evilcorp.example", 400),
        (None, "rebind.attacker.example", 200),  # create_app's default: the embedding server's choice
        (("dash.example.com",), "dash.example.com.:443", 200),  # a fully qualified name's trailing dot
        (("Dash.Example.com.",), "dash.example.com", 200),
        (("*.corp.example",), "a.corp.example.", 200),
        (("my_svc",), "my_svc:8765", 200),  # a Docker Compose service's name
    ],
)
def test_allowed_hosts_refuse_a_request_for_another_name(
    sqlite_url: str, allowed: tuple[str, ...] | None, host: str, status: int
) -> None:
    from starlette.testclient import TestClient

    from musicstore.web import create_app

    with TestClient(create_app(sqlite_url, allowed_hosts=allowed)) as client:
        answer = client.get("/api/overview", headers={"Host": host})
    assert answer.status_code == status
    if status == 400:
        assert "not a host this dashboard answers for" in answer.text and "generations" not in answer.text


@pytest.mark.parametrize("names", ["dash.example.com", ["bad name"], ["a/b"], [""], [7], ["*.com"], ["*."]])
def test_allowed_hosts_must_be_a_list_of_host_names(sqlite_url: str, names: Any) -> None:
    from musicstore import InvalidInput
    from musicstore.web import create_app

    with pytest.raises(InvalidInput, match="allowed_hosts"):
        create_app(sqlite_url, allowed_hosts=names)


def test_serve_without_a_token_refuses_a_rebound_host_name(sqlite_url: str) -> None:
    """`musicstore serve` on 127.0.0.1 without a token answered a request for any name: a web page whose DNS
    name was pointed at 127.0.0.1 read every prompt and file as its own origin."""
    import http.client
    import signal
    import subprocess
    import sys

    from musicstore.testing._browser import free_port

    port = free_port()
    command = [sys.executable, "-m", "musicstore", "serve", "--database", sqlite_url, "--port", str(port)]
    command += ["--log-level", "critical", "--allowed-host", "music.example"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def status(host: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/api/generations", headers={"Host": f"{host}:{port}"})
            return connection.getresponse().status
        finally:
            connection.close()

    try:
        deadline = time.monotonic() + 60  # the process imports the web stack first
        while True:
            assert process.poll() is None
            try:
                status("127.0.0.1")
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.05)
        hosts = ("127.0.0.1", "localhost", "music.example", "rebind.attacker.example")
        assert [status(host) for host in hosts] == [200, 200, 200, 400]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


# --- time: a store's own clock, zones, the years before 1000 and 1970 -------------------------------------


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_progress_reports_extend_a_lease_by_the_stores_own_clock(tmp_path: Path, driver: str) -> None:
    """With a FakeClock, reports with ``lease_seconds`` every 20 s of a 30 s lease were dropped after the
    first (the coalescer measured half a lease on the monotonic clock): ``requeue_expired`` took the job."""
    from musicstore import Store
    from musicstore.aio import AsyncStore
    from musicstore.testing import FakeClock

    clock, url = FakeClock(), f"sqlite:///{tmp_path / 'x.db'}"
    migrate(url)

    async def reports(store: Any) -> list[Any]:
        async def call(value: Any) -> Any:
            return (await value) if driver == "async" else value

        made = await call(store.create_generation("p", model_name="m", duration_seconds=5))
        assert await call(store.claim_next("w", lease_seconds=30)) is not None
        wrote = []
        for step in range(1, 6):
            clock.advance(20)
            wrote.append(await call(store.report_progress(made.id, "w", step / 10, "s", lease_seconds=30)))
            assert (await call(store.requeue_expired())).requeued == []
        row = await call(store.get_generation(made.id))
        return [*wrote, row.status.value, row.lease_expires_at - clock.now]

    if driver == "sync":
        with Store(url, clock=clock) as store:
            found = asyncio.run(reports(store))
    else:

        async def main() -> list[Any]:
            async with AsyncStore(url, clock=clock) as store:
                return await reports(store)

        found = asyncio.run(main())
    assert found == [True] * 5 + ["processing", timedelta(seconds=30)]


def test_fake_clock_in_a_zone_with_daylight_saving_advances_by_elapsed_time() -> None:
    from zoneinfo import ZoneInfo

    from musicstore.testing import FakeClock

    clock = FakeClock(datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York")))  # DST starts at 2:00
    first = clock()
    assert first.tzinfo is UTC
    assert [clock.advance(3600) - first for _ in range(3)] == [timedelta(hours=h) for h in (1, 2, 3)]


@pytest.mark.parametrize("seconds", [4e-7, 1e-9, 5e-324])
def test_a_lease_under_a_microsecond_is_refused(sqlite_url: str, seconds: float) -> None:
    from musicstore import InvalidInput, Store

    with Store(sqlite_url) as store:
        made = store.create_generation("p", model_name="m", duration_seconds=1)
        with pytest.raises(InvalidInput, match="at least a microsecond"):
            store.claim_next("w", lease_seconds=seconds)
        row = store.get_generation(made.id)
        assert row is not None and row.status.value == "pending"
        assert store.claim_next("w", lease_seconds=1e-6) is not None


def test_moments_before_the_year_1000_show_four_digit_years() -> None:
    from musicstore.cli.output import moment_text
    from musicstore.web.templating import _when

    moment = datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert moment_text(moment) == _when(moment) == "0999-12-31 23:59:59"
    assert moment_text(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01 00:00:00"


def test_the_dashboards_table_lists_rows_made_before_1970(tmp_path: Path) -> None:
    """Its newest-first pages stopped at 1970-01-01 (their lower bound was the epoch)."""
    from starlette.testclient import TestClient

    from musicstore import Store
    from musicstore.testing import FakeClock
    from musicstore.web import create_app

    url, clock = f"sqlite:///{tmp_path / 'x.db'}", FakeClock(datetime(1960, 1, 1, tzinfo=UTC))
    migrate(url)
    with Store(url, clock=clock) as store:
        made = []
        for when in (
            datetime(1960, 1, 1, tzinfo=UTC),
            datetime(1969, 12, 31, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
        ):
            clock.now = when
            made.append(store.create_generation(f"tune {when.year}", model_name="m", duration_seconds=1).id)
        with TestClient(create_app(store)) as client:
            seen, cursor = [], None
            while True:
                page = client.get(
                    "/api/generations", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
                )
                body = page.json()
                seen += [item["id"] for item in body["items"]]
                if not (cursor := body.get("next_cursor")):
                    break
            searched = client.get("/api/generations", params={"q": "tune"}).json()["items"]
    assert seen == made[::-1]
    assert [item["id"] for item in searched] == made[::-1]


def test_a_connection_given_back_mid_statement_logs_no_warning(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An operation interrupted by Ctrl-C gives its connection back mid-statement: psycopg_pool closed it with
    a WARNING ('closing returned connection: <Connection [ACTIVE] ...>', on stderr with no logging configured)
    on top of the KeyboardInterrupt. At DEBUG now, as the pool's other records of a lost connection."""
    import logging

    from musicstore import Store

    with Store(postgres_url) as store:
        connector = store._connector
        conn = connector.acquire()
        conn.pgconn.send_query(b"SELECT pg_sleep(0.05)")  # as a statement Ctrl-C interrupted: ACTIVE
        with caplog.at_level(logging.WARNING):
            connector.release(conn)
        assert conn.closed
        assert store.count_generations() == 0  # the pool made another
    assert not [record for record in caplog.records if "returned connection" in record.getMessage()]


def test_the_umask_is_read_without_being_set(tmp_path: Path) -> None:
    """Importing the export's file module set the process's umask to 0 for a moment to read it: a thread of a
    service importing it late (a dashboard's first waveform) could make a world-writable file then."""
    import subprocess
    import sys

    code = (
        "import os\nreal, calls = os.umask, []\n"
        "os.umask = lambda mask: calls.append(mask) or real(mask)\n"
        "import musicstore.audio.files as files\nprint(calls, oct(files._file_mode()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stdout.split() == ["[]", oct(0o666 & ~mask)]


def test_a_forked_child_of_a_store_that_waited_warns_of_no_unclosed_socket(postgres_url: str) -> None:
    """The child's fork hook dropped its copy of the wait hub's wake-up socket without closing it: a
    ResourceWarning in every forked child (a multiprocessing or DataLoader worker) of a worker that waited."""
    import multiprocessing
    import warnings

    from musicstore import Store

    def child(queue: Any, caught: list[warnings.WarningMessage]) -> None:
        import gc

        gc.collect()
        queue.put([str(w.message) for w in caught if issubclass(w.category, ResourceWarning)])

    with Store(postgres_url) as store:
        assert store.claim_next("w", wait=0.01) is None  # the parent's hub runs
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        with warnings.catch_warnings(record=True) as caught:  # the child's copy records its fork hook's
            warnings.simplefilter("always", ResourceWarning)
            process = context.Process(target=child, args=(queue, caught))
            process.start()
            found = queue.get(timeout=60)
        process.join(60)
    assert process.exitcode == 0 and found == []


# --- copy_store keeps when each owner key's lane was last served -------------------------------------------


@pytest.mark.parametrize("target_backend", ["sqlite", "postgres"])
def test_a_copied_store_serves_its_lanes_in_the_sources_order(
    tmp_path: Path, request: pytest.FixtureRequest, target_backend: str
) -> None:
    """The lanes of keys whose jobs had all finished were made afresh on the target as never served: their
    next jobs were claimed in another order than the source's round robin (B before A, where A was served
    longer ago). Copied twice, the lanes' times stay (the copy is idempotent)."""
    from musicstore import Store
    from musicstore.maintenance.transfer import copy_store
    from musicstore.testing import FakeClock

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    migrate(source_url)
    with Store(source_url, clock=clock) as source:
        for key in ("A", "B"):
            source.create_generation(key.lower(), model_name="m", duration_seconds=1, owner_key=key)
        for _ in range(2):
            clock.advance(10)
            claimed = source.claim_next("w")
            assert claimed is not None
            source.complete_generation(claimed.id, file_path=f"{claimed.id}.wav", file_size_bytes=1)
        for key in ("B", "A"):  # B's next job is the older
            clock.advance(1)
            source.create_generation(f"{key.lower()}2", model_name="m", duration_seconds=1, owner_key=key)
    target_url = str(request.getfixturevalue(f"{target_backend}_url"))

    def claims(url: str) -> list[str]:
        with Store(url, clock=FakeClock(datetime(2026, 1, 2, tzinfo=UTC))) as store:
            return [job.prompt for job in iter(lambda: store.claim_next("w2"), None)]

    with Store(source_url) as source, Store(target_url) as target:
        copy_store(source, target)
        copy_store(source, target)
    assert claims(target_url) == claims(source_url) == ["a2", "b2"]


def test_cancelled_async_claims_leave_no_file_descriptors_after_close(tmp_path: Path) -> None:
    """A claim cancelled as it began (a client gone) was often opening a connection: aiosqlite's thread made
    it for no one, only the garbage collector closed it, and SQLite kept its file descriptor open while
    another connection of the process held the file's locks, after ``AsyncStore.close()`` too."""
    from musicstore import Store
    from musicstore.aio import AsyncStore

    url = f"sqlite:///{tmp_path / 'x.db'}"
    migrate(url)

    def descriptors() -> int:
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found += os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "x.db"))
        return found

    async def churn() -> None:
        async with AsyncStore(url) as store:
            for _ in range(300):
                task = asyncio.ensure_future(store.claim_next("w", wait=60))
                await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    with Store(url) as other:  # holds the file's locks, as a sync store beside the async one does
        other.create_generation("p", model_name="m", duration_seconds=1, owner_key="o")
        other.set_owner_limit("o", 0)  # nothing to claim: each claim waits
        before = descriptors()
        asyncio.run(churn())
        assert descriptors() - before <= 4


# --- cleanup prunes the lanes of owner keys with no job left ----------------------------------------------


def test_cleanup_prunes_idle_lanes_served_before_its_cutoff(db_url: str, tmp_path: Path) -> None:
    """The lanes' triggers keep a row for every owner key ever used and never delete one: a service with a key
    per user grew ``owner_lanes`` by a row per user, for ever (2,000 keys, every job deleted: 2,000 rows)."""
    from musicstore import Store
    from musicstore.maintenance.retention import cleanup
    from musicstore.testing import FakeClock

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:

        def served(key: str) -> str:
            made = store.create_generation("p", model_name="m", duration_seconds=1, owner_key=key)
            claimed = store.claim_next("w")
            assert claimed is not None and claimed.id == made.id
            store.fail(made.id, "no", retry=False)
            return made.id

        for key in ("old-1", "old-2", "old-waiting"):
            served(key)
        waiting = store.create_generation("p", model_name="m", duration_seconds=1, owner_key="old-waiting")
        clock.advance(timedelta(days=40))
        served("recent")

        def prune(dry_run: bool) -> int:
            return cleanup(
                store, tmp_path, older_than=timedelta(days=30), statuses=["failed"], dry_run=dry_run
            ).lanes_deleted

        assert prune(dry_run=True) == 2
        assert prune(dry_run=True) == 2  # a dry run deletes nothing
        assert (
            prune(dry_run=False) == 2
        )  # old-1 and old-2: old-waiting has a job pending, recent was served since
        assert prune(dry_run=False) == 0
        again = served("old-1")  # the key's next job makes its lane again
        assert store.get_generation(again) is not None
        claimed = store.claim_next("w")
        assert claimed is not None and claimed.id == waiting.id


def test_serve_answers_the_name_it_listens_on_and_checks_allowed_hosts_as_usage(sqlite_url: str) -> None:
    """``serve --host NAME`` printed http://NAME:port/ and refused requests for it; a bad ``--allowed-host``
    was exit code 1 without a token and silently ignored with one."""
    import socket
    import subprocess
    import sys

    from musicstore.cli.serve_command import _own_names

    assert _own_names("gpu-box") == ["gpu-box"]
    assert _own_names("::1") == []
    assert socket.gethostname().lower() in _own_names("0.0.0.0")
    for extra in ([], ["--token", "a-long-token"]):
        command = [sys.executable, "-m", "musicstore", "serve", "--database", sqlite_url, "--check"]
        asked = [*command, "--allowed-host", "bad name", *extra]
        done = subprocess.run(asked, capture_output=True, text=True, check=False)
        assert done.returncode == 2 and "--allowed-host" in done.stderr and "not a host name" in done.stderr
    asked = [*command, "--allowed-host", "ok.example", "--token", "a-long-token"]
    done = subprocess.run(asked, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "--allowed-host has no effect with a token" in done.stderr


def test_a_dry_run_counts_the_lanes_a_cleanup_deletes(db_url: str, tmp_path: Path) -> None:
    """A dry run counted the lanes idle then, a run also those its own deletes of pending jobs emptied."""
    from musicstore import Store
    from musicstore.maintenance.retention import cleanup
    from musicstore.testing import FakeClock

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:
        store.create_generation("p", model_name="m", duration_seconds=1, owner_key="user-1")
        clock.advance(timedelta(days=2))
        asked = {"older_than": timedelta(days=1), "statuses": ["pending"]}
        planned = cleanup(store, tmp_path, **asked)  # type: ignore[arg-type]
        done = cleanup(store, tmp_path, **asked, dry_run=False)  # type: ignore[arg-type]
        assert (
            (planned.rows_deleted, planned.lanes_deleted) == (done.rows_deleted, done.lanes_deleted) == (1, 0)
        )
        assert cleanup(store, tmp_path, **asked, dry_run=False).lanes_deleted == 1  # type: ignore[arg-type]

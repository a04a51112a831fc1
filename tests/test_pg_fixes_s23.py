"""PostgreSQL fixes (session 23): migrations on a database whose settings differ from the store's, the waiting
hub's LISTEN connection lost, the metrics' reads under a year-1 clock, and more found hunting."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from yoyo.connections import parse_uri

from musicstore import AsyncStore, DatabaseError, MigrationError, Status, Store, migrate, waiting
from musicstore.metrics import metrics_text, read_metrics
from musicstore.migrate import shipped_migrations, yoyo_url
from musicstore.testing import FakeClock
from musicstore.waiting import WORK
from musicstore.waiting import hub as listening
from tests.conftest import until

SOON = 20.0  # a wake-up measured in ms; the alternatives are an hour (RECONNECT_SECONDS, the re-try)
"""A wake-up that came at once (measured 10-40 ms; seconds on a loaded machine), not at a pause or re-try
(each test makes those an hour, or waits without them)."""


def test_migrate_creates_the_schema_in_a_sql_ascii_database(scratch_database: tuple[Any, str]) -> None:
    """yoyo's connection kept the database's client_encoding: in a database created with SQL_ASCII (``createdb
    -E SQL_ASCII -T template0``, a common choice of old clusters) psycopg sent text parameters as bytea and
    the first migration failed with "operator does not exist: information_schema.sql_identifier = bytea"
    (a MigrationError naming no cause). Migrations run with the store's session settings (UTF8)."""
    server, name = scratch_database
    ascii = "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    server.admin(f"CREATE DATABASE {name} {ascii}")
    url = server.url(name)
    assert migrate(url) == shipped_migrations()
    assert migrate(url) == []
    prompt = "caf\u00e9 \U0001f3b5 \u4e2d"
    with Store(url) as store:
        made = store.create_generation(prompt, model_name="m", duration_seconds=1, metadata={"\u4e2d": "x"})
        assert store.get_generation(made.id) == made


@pytest.mark.parametrize(
    "setting", ["client_encoding = 'SQL_ASCII'", "DateStyle = 'SQL, DMY'", "extra_float_digits = 0"]
)
def test_migrate_ignores_the_session_settings_of_the_database_and_its_role(
    scratch_database: tuple[Any, str], setting: str
) -> None:
    """A database's (or role's) settings reach yoyo's connection as they reach the store's; the migrations
    run under the store's settings whatever they are."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET {setting}")
    url = server.url(name)
    assert migrate(url) == shipped_migrations()
    with Store(url) as store:
        made = store.create_generation("caf\u00e9", model_name="m", duration_seconds=1)
        assert store.get_generation(made.id) == made


def test_metrics_under_a_clock_in_the_first_days_of_the_year_1(db_url: str) -> None:
    """The metrics' window reaching back before the year 1 counts from the calendar's start, as
    ``queue_position``'s does: a snapshot, not an OverflowError (no MusicstoreError) at each scrape."""
    clock = FakeClock(datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC))
    with Store(db_url, clock=clock) as store:
        job = store.create_generation("early", model_name="m", duration_seconds=1)
        assert store.claim_next("gpu-0", lease_seconds=1) is not None
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1)
        store.create_generation("next", model_name="m", duration_seconds=1)
        snapshot = read_metrics(store, window=3600)
        assert snapshot.window.completions == 1 and snapshot.by_status["pending"] == 1
        assert sum(snapshot.window.generations.values()) == 2 and len(snapshot.recent) == 2
        assert b"musicstore_generations" in metrics_text(store, window=366 * 86_400)


_until = partial(until, pause=0.005)


def _listening_pid(url: str) -> int:
    """The server process of the database's one listening connection (its last statement a LISTEN)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
        ).fetchall()
    (pid,) = (int(row[0]) for row in rows)
    return pid


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wait_wakes_at_once_at_an_enqueue_after_its_listening_backend_is_terminated(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """pg_terminate_backend of the hub's server process (a store's waits just started): the hub listens again
    at once and an enqueue made 50 ms after the kill wakes a waiting claim at once (the re-try is an
    hour). The hub paused RECONNECT_SECONDS (1 s) before making again a connection that had lasted less than
    that: in a worker's first second no wait was woken for a whole second."""
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 3600.0)
    monkeypatch.setattr("musicstore.waiting.hub.RECONNECT_SECONDS", 3600.0)  # a pause to listen again: 1 h
    started = threading.Event()
    claimed: list[float] = []

    def wait_for_work() -> None:
        if kind == "sync":
            with Store(postgres_url) as store:
                started.set()
                assert store.claim_next("gpu-0", wait=60.0) is not None
        else:

            async def main() -> None:
                async with AsyncStore.open(postgres_url) as astore:
                    started.set()
                    assert await astore.claim_next("gpu-0", wait=60.0) is not None

            asyncio.run(main())
        claimed.append(time.monotonic())

    with Store(postgres_url) as other:
        thread = threading.Thread(target=wait_for_work)
        thread.start()
        started.wait(60.0)
        pids: list[int] = []

        def listening() -> bool:
            try:
                pids.append(_listening_pid(postgres_url))
            except ValueError:
                return False
            return True

        _until(listening)
        time.sleep(0.05)  # the wait sleeps
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
        time.sleep(0.05)
        enqueued = time.monotonic()
        other.create_generation("p", model_name="m", duration_seconds=1)
        thread.join(60.0)
    # measured 10-40 ms (it was RECONNECT_SECONDS); SOON leaves room for a loaded machine
    assert claimed and claimed[0] - enqueued < SOON, claimed[0] - enqueued if claimed else None


class _Proxy:
    """A TCP proxy to a PostgreSQL server on 127.0.0.1 whose connections ``freeze`` silences: what passes
    through them from then on is dropped, and nothing is closed (a network that drops packets, a NAT that
    forgot the connection). Connections made after it pass as usual."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.frozen: set[socket.socket] = set()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
                self.sockets += [client, server]
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=self._pass, args=(source, sink), daemon=True).start()

    def _pass(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if source not in self.frozen:
                    sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def freeze(self) -> None:
        self.frozen.update(self.sockets)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_a_listening_connection_that_stops_answering_is_made_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's connection goes silent (nothing passes, nothing is closed: a dropped network, a NAT or
    firewall that forgot it, a server host gone without a word): its socket never became readable, so the
    hub kept it for ever and no wait of the store was woken again (each re-tried every RECHECK_SECONDS).
    The hub asks its connection for an answer when it has been quiet ``KEEPALIVE_SECONDS``, and one that
    gives none in ``ANSWER_SECONDS`` is lost: made again, after which an enqueue wakes a wait at once."""
    monkeypatch.setattr(listening, "KEEPALIVE_SECONDS", 0.2, raising=False)
    # an ask answered within 10 s, however loaded the machine (0.2 s, then 2 s, were races with the proxy's
    # thread: a stall of it that long before the connection is frozen made a second connection)
    monkeypatch.setattr(listening, "ANSWER_SECONDS", 10.0, raising=False)
    parts = urlsplit(postgres_url)
    assert parts.port is not None and parts.hostname == "127.0.0.1"
    proxy = _Proxy(parts.port)
    hub = listening._Hub(SimpleNamespace(url=postgres_url.replace(f":{parts.port}/", f":{proxy.port}/")))
    waiter = listening._ThreadWaiter(WORK)
    try:
        hub.start()
        assert hub.register(waiter)
        time.sleep(0.5)  # answered asks: the connection stays
        assert hub.connections == 1
        proxy.freeze()
        _until(lambda: hub.connections == 2, 60.0)
        time.sleep(0.1)  # the hub's wake-up of every wait, as it listens again
        waiter.arm()
        with Store(postgres_url) as other:
            enqueued = time.monotonic()
            other.create_generation("p", model_name="m", duration_seconds=1)
            assert waiter.sleep(60.0)
            assert time.monotonic() - enqueued < SOON
    finally:
        hub.unregister(waiter)
        hub.close()
        proxy.close()


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_database_s_default_isolation_level_does_not_make_the_store_s_writes_conflict(
    postgres_url: str, isolation: str
) -> None:
    """The store's writes are made for READ COMMITTED, PostgreSQL's default: a statement sees the rows other
    transactions committed before it (a cancel finds the job as a worker's claim left it). With the
    database's or role's default_transaction_isolation set higher (a DBA's choice for their own
    applications), a write transaction that had read before another committed failed with WriteConflict
    ('could not serialize access due to concurrent update'), and concurrent claims did too. The store's
    sessions use READ COMMITTED, as they set their other settings."""
    database = urlsplit(postgres_url).path.lstrip("/")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {database} SET default_transaction_isolation = '{isolation}'")
    with Store(postgres_url) as store, Store(postgres_url) as other:
        job = store.create_generation("p", model_name="m", duration_seconds=1)
        with store.transaction() as tx:
            read = tx.get_generation(job.id)
            assert read is not None and read.status is Status.PENDING
            assert other.claim_next("gpu-0") is not None
            tx.cancel(job.id)
        after = store.get_generation(job.id)
        assert after is not None and after.status is Status.CANCELLED


def test_yoyo_url_spelled_with_parameters_keeps_its_two_slashes() -> None:
    """A URL that yoyo would read otherwise than libpq is spelled with every setting as a parameter,
    ``postgresql+psycopg:///?user=...`` as docs/migrations.md shows; with its password left out it came as
    ``postgresql+psycopg:/?user=...`` (``urlunsplit`` drops the empty host's ``//`` for a scheme it does not
    know). yoyo read both alike; the printed URL is now the documented one."""
    url = "postgresql://u:pw@127.0.0.1:5/m%C3%BC%20db"
    assert yoyo_url(url) == ("postgresql+psycopg:///?user=u&dbname=m%C3%BC%20db&host=127.0.0.1&port=5", True)
    assert yoyo_url("postgresql://u@h:5/db?password=pw&sslmode=require") == (
        "postgresql+psycopg://u@h:5/db?sslmode=require",
        True,
    )
    parsed = parse_uri(yoyo_url(url)[0])
    assert parsed.args == {"user": "u", "dbname": "m\u00fc db", "host": "127.0.0.1", "port": "5"}


@pytest.mark.parametrize(
    ("where", "password"), [("userinfo", "se%00cret"), ("query", "se%00cret"), ("query", "sec%ZZret")]
)
def test_migrate_refuses_a_url_that_libpq_refuses_as_the_store_does(
    scratch_database: tuple[Any, str], where: str, password: str
) -> None:
    """A URL libpq cannot read (a password percent-encoding a NUL, or a bad percent-escape) is refused by the
    store ("forbidden value %00", "invalid percent-encoded token"). migrate() gave it to yoyo, which reads it
    otherwise: with %00 its connection string ended at the NUL, so yoyo connected without the URL's host and
    port, to the local server's socket (a local server with the same database name and trust would have been
    migrated in place of the URL's); with %ZZ in ``?password=`` it connected with the text as the password
    and migrated a database the store then refused to open. migrate() now refuses it as the store does,
    naming the cause and not the password."""
    server, name = scratch_database
    server.admin(f"CREATE DATABASE {name}")
    parts = urlsplit(server.url(name))
    at = f"{parts.hostname}:{parts.port}/{name}"
    if where == "userinfo":
        url = f"postgresql://{parts.username}:{password}@{at}"
    else:
        url = f"postgresql://{parts.username}@{at}?password={password}"
    with pytest.raises(DatabaseError) as store_refused:
        Store(url).close()
    reason = str(store_refused.value).split(" (", 1)[1].split(")")[0].strip()
    assert "percent" in reason  # libpq's, not the missing schema's
    with pytest.raises(MigrationError) as caught:
        migrate(url)
    message = str(caught.value)
    assert reason in message and "socket" not in message and password not in message
    with psycopg.connect(server.url(name)) as conn:
        assert conn.execute("SELECT to_regclass('generations')").fetchone() == (None,)


def _tcp_settings(conn: Any) -> tuple[int, int, int, int, int]:
    """The keepalive and user-timeout options of ``conn``'s own socket, as the kernel holds them."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        )
    finally:
        sock.close()


_DEFAULTS = (1, 30, 10, 3, 60000)


def test_every_connection_finds_a_silent_cut_within_a_minute_unless_the_url_says_otherwise(
    postgres_url: str,
) -> None:
    """A connection cut without a word reaching this host hung an operation (or the hub) for two hours or
    for ever (the system's keepalive defaults, none at all for unacknowledged data), where docs/operations.md
    says it fails with a DatabaseError. The store's pooled connections (sync and async), its reachability
    probe's and the hub's listening connection get keepalives after 30 s idle, 3 probes 10 s apart, and a
    60 s TCP user timeout; a URL's own settings win."""
    assert urlsplit(postgres_url).hostname == "127.0.0.1"  # TCP: a Unix socket ignores these
    own = postgres_url + ("&" if "?" in postgres_url else "?") + "keepalives_idle=7&tcp_user_timeout=5000"
    for url, expected in ((postgres_url, _DEFAULTS), (own, (1, 7, 10, 3, 5000))):
        with Store(url) as store:
            conn = store._connector.acquire()
            try:
                assert _tcp_settings(conn) == expected
            finally:
                store._connector.release(conn)

        async def pooled(url: str = url) -> tuple[int, ...]:
            async with AsyncStore.open(url) as astore:
                conn = await astore._connector.acquire()
                try:
                    return _tcp_settings(conn)
                finally:
                    await astore._connector.release(conn)

        assert asyncio.run(pooled()) == expected
        hub = listening._Hub(SimpleNamespace(url=url))
        conn = hub._connect()
        try:
            assert _tcp_settings(conn) == expected
        finally:
            conn.close()

"""Found by black-box probes of the job store core (create/claim/.../transactions, both backends, sync and
async): each test failed before its fix."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import musicstore
from musicstore import DatabaseError, Generation, InvalidInput, Store
from musicstore.aio import AsyncStore
from musicstore.models import prompt_digest
from musicstore.ops.steps import NOW, Call, Steps, writer
from musicstore.urls import resolve
from tests.conftest import new_job


@writer
def _insert_again(generation: Generation) -> Steps[None]:
    """Insert a row under an id that is taken: the database refuses it (its primary key), on both backends."""
    now = yield NOW
    row = {
        "id": generation.id,
        "prompt": generation.prompt,
        "model_name": generation.model_name,
        "model_version": None,
        "duration_seconds": generation.duration_seconds,
        "sample_rate": generation.sample_rate,
        "channels": generation.channels,
        "created_at": now,
        "metadata": "{}",
        "prompt_digest": prompt_digest(generation.prompt),
        "priority": 0,
        "run_after": None,
        "owner_key": None,
        "idempotency_key": None,
    }
    yield Call("insert_generation", row)


def test_a_transaction_whose_block_caught_a_database_error_never_reports_a_commit_it_did_not_make(
    db_url: str,
) -> None:
    """On PostgreSQL a failed statement aborts the transaction and COMMIT silently rolls it back: the block
    ended normally, yet nothing of it was stored. Now the block's end raises DatabaseError there (SQLite
    keeps the transaction's other statements and commits them)."""
    with Store(db_url) as store:
        taken = new_job(store, "taken")
        before = store.get_database_stats()
        committed = False
        with pytest.raises(DatabaseError) if resolve(db_url).dialect == "postgres" else _nothing():
            with store.transaction() as tx:
                kept = tx.create_generation("kept", model_name="m", duration_seconds=1)
                with pytest.raises(DatabaseError):
                    tx.run(_insert_again, taken)
            committed = True
        assert (store.get_generation(kept.id) is not None) is committed
        assert (store.get_database_stats() != before) is committed
        assert (store.get_prompt_by_text("kept") is not None) is committed


def test_an_async_transaction_whose_block_caught_a_database_error_never_reports_a_commit_it_did_not_make(
    db_url: str,
) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            taken = await store.create_generation("taken", model_name="m", duration_seconds=1)
            before = await store.get_database_stats()
            committed = False
            with pytest.raises(DatabaseError) if resolve(db_url).dialect == "postgres" else _nothing():
                async with store.transaction() as tx:
                    kept = await tx.create_generation("kept", model_name="m", duration_seconds=1)
                    with pytest.raises(DatabaseError):
                        await tx.run(_insert_again, taken)
                committed = True
            assert (await store.get_generation(kept.id) is not None) is committed
            assert (await store.get_database_stats() != before) is committed

    asyncio.run(main())


class _nothing:  # noqa: N801  # a context manager that expects nothing (``contextlib.nullcontext``, typed)
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_OFFSETS = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(moment=st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2), timezones=_OFFSETS),
    st.datetimes(min_value=datetime(9999, 12, 30), max_value=datetime.max, timezones=_OFFSETS),
    st.datetimes(timezones=_OFFSETS),
))  # fmt: skip
def test_run_after_is_stored_as_given_or_refused_as_invalid_input(store: Store, moment: datetime) -> None:
    """A ``run_after`` whose UTC instant falls outside the years 1-9999 (9999-12-31 23:00-05:00) raised a
    bare OverflowError on SQLite, DatabaseError on PostgreSQL; now InvalidInput on both, nothing written."""
    before = store.get_database_stats()
    try:
        made = store.create_generation("later", model_name="m", duration_seconds=1, run_after=moment)
    except InvalidInput:
        assert store.get_database_stats() == before
        return
    stored = store.get_generation(made.id)
    assert stored is not None and stored.run_after == moment == made.run_after


@pytest.mark.parametrize("write", ["no", 0, 1, None])
def test_a_transaction_flag_that_is_not_a_bool_is_invalid_input(sqlite_url: str, write: Any) -> None:
    """``transaction(write="no")`` opened a write transaction (a truthy str) and ``write=0`` a read one."""
    refused = pytest.raises(InvalidInput, match="write")
    with Store(sqlite_url) as opened, refused, opened.transaction(write=write):
        pass

    async def main() -> None:
        async with AsyncStore.open(sqlite_url) as store:
            with pytest.raises(InvalidInput, match="write"):
                async with store.transaction(write=write):
                    pass

    asyncio.run(main())


def test_a_closed_store_refuses_every_operation_and_opens_no_connection(db_url: str) -> None:
    """After ``close()`` an operation opened a new connection (SQLite) or a whole new pool (PostgreSQL) that
    nothing closed again, and answered as if the store were open; ``claim_next(wait=...)`` alone refused."""
    store = Store(db_url)
    job = new_job(store)
    store.close()
    for call in (
        lambda: store.get_generation(job.id),
        store.count_generations,
        store.get_database_stats,
        store.list_generations,
        lambda: new_job(store),
        lambda: store.claim_next("gpu-0"),
        lambda: store.cancel(job.id),
        lambda: store.transaction().__enter__(),
    ):
        with pytest.raises(InvalidInput, match="closed"):
            call()
    assert getattr(store._connector, "_pool", None) is None
    store.close()  # closing again is harmless
    with Store(db_url) as reopened:
        assert reopened.get_generation(job.id) == job  # the cancel above changed nothing


def test_a_closed_async_store_refuses_every_operation_and_opens_no_connection(db_url: str) -> None:
    async def main() -> None:
        store = await AsyncStore.open(db_url)
        job = await store.create_generation("p", model_name="m", duration_seconds=1)
        await store.close()
        for call in (
            lambda: store.get_generation(job.id),
            store.get_database_stats,
            lambda: store.create_generation("p", model_name="m", duration_seconds=1),
            lambda: store.claim_next("gpu-0"),
        ):
            with pytest.raises(InvalidInput, match="closed"):
                await call()
        assert getattr(store._connector, "_pool", None) is None and not getattr(store._connector, "_idle", [])
        await store.close()
        async with AsyncStore.open(db_url) as reopened:
            assert await reopened.count_generations() == 1

    asyncio.run(main())


def _terminate_others(url: str) -> int:
    """Terminate every other backend connected to the database at ``url`` (a server restart, as the pool
    sees it); returns how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 60000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def _failures_until_an_answer(call: Any) -> int:
    for failures in range(10):
        try:
            call()
        except DatabaseError:
            continue
        return failures
    raise AssertionError("no answer in 10 tries")


def test_after_the_server_dropped_every_connection_one_operation_fails_not_one_per_pooled_connection(
    postgres_url: str,
) -> None:
    """Each idle pooled connection the server had ended failed an operation of its own (four connections:
    four errors in a row); the first broken one now has the pool test its idle ones, and an idle connection
    the server's word has reached is not handed out (none fails then; the backends are not waited for)."""
    import threading

    with Store(postgres_url, pool_size=4) as store:
        connector = store._connector
        barrier = threading.Barrier(4)

        def hold() -> None:  # four connections at once: the pool keeps four
            conn = connector.acquire()
            barrier.wait()
            connector.release(conn)

        threads = [threading.Thread(target=hold) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _terminate_others(postgres_url) == 4
        assert _failures_until_an_answer(store.count_generations) <= 1


def test_async_after_the_server_dropped_every_connection_one_operation_fails(postgres_url: str) -> None:
    async def main() -> None:
        async with AsyncStore.open(postgres_url, pool_size=4) as store:
            connector = store._connector
            held = [await connector.acquire() for _ in range(4)]
            for conn in held:
                await connector.release(conn)
            assert _terminate_others(postgres_url) == 4
            failures = 0
            while True:
                try:
                    await store.count_generations()
                    break
                except DatabaseError:
                    failures += 1
                    assert failures < 10, "no answer in 10 tries"
            assert failures <= 1  # as the sync test's

    asyncio.run(main())


_migrate: Any = musicstore.migrate  # called with what its signature does not allow
_Store: Any = Store


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda url: _migrate(5), "URL"),
        (lambda url: _migrate(b"sqlite:///x.db"), "URL"),
        (lambda url: musicstore.init_db(url + "\x00"), "URL"),
        (lambda url: _migrate(url, lock_timeout="60"), "lock_timeout"),
        (lambda url: _migrate(url, lock_timeout=-1), "lock_timeout"),
        (lambda url: _migrate(url, lock_timeout=math.nan), "lock_timeout"),
        (lambda url: _Store(url, migrate="yes"), "migrate"),
        (lambda url: asyncio.run(_open_async(url, migrate=1)), "migrate"),
    ],
)
def test_migrate_and_the_stores_refuse_arguments_of_the_wrong_type(
    sqlite_url: str, call: Any, named: str
) -> None:
    """``migrate(5)`` raised a bare TypeError, a NUL in its URL a ValueError, ``lock_timeout='60'`` a
    TypeError, and -1 or NaN were taken; ``Store(url, migrate='yes')`` migrated (a truthy str)."""
    with pytest.raises(InvalidInput, match=named):
        call(sqlite_url)


async def _open_async(url: str, **options: Any) -> None:
    store = await AsyncStore.open(url, **options)
    await store.close()


@pytest.mark.parametrize(
    "options",
    [{"count": "3"}, {"count": 0}, {"count": -1}, {"count": True}, {"worker_id": ""}, {"seconds": math.inf}],
)
def test_run_demo_refuses_bad_arguments_before_anything_is_written(tmp_path: Path, options: Any) -> None:
    """``run_demo(worker_id="")`` enqueued its jobs and then failed at the claim, leaving them pending (the
    next demo on that database refused to run); ``count="3"`` raised a bare TypeError, ``count=0``, -1 or
    True were taken."""
    from musicstore.cli.demo import run_demo

    database = tmp_path / "demo.db"
    with pytest.raises(InvalidInput):
        run_demo(f"sqlite:///{database}", output_root=tmp_path / "audio", echo=lambda line: None, **options)
    assert not database.exists()
    assert not (tmp_path / "audio").exists()


@pytest.mark.parametrize("length", [1_024, 1_025, 4_096])
def test_a_file_path_is_refused_as_invalid_input_beyond_what_its_storage_key_holds(
    store: Store, length: int
) -> None:
    """``file_path`` is also the row's ``storage_key``, which the schema keeps to 1,024 characters: a path
    of 1,025–4,096 passed the check (then 4,096) and the database refused it, a ``DatabaseError``."""
    job = new_job(store)
    assert store.claim_next("w") is not None
    path = "a/" + "b" * (length - 6) + ".wav"
    assert len(path) == length
    if length > 1_024:
        with pytest.raises(InvalidInput, match="file_path"):
            store.complete_generation(job.id, file_path=path, file_size_bytes=1)
        got = store.get_generation(job.id)
        assert got is not None and got.status.value == "processing" and got.file_path is None
    else:
        done = store.complete_generation(job.id, file_path=path, file_size_bytes=1)
        assert done.file_path == path


def test_a_backslash_in_a_file_path_is_named_in_its_message(store: Store) -> None:
    job = new_job(store)
    assert store.claim_next("w") is not None
    with pytest.raises(InvalidInput, match=r"with '/', not '\\'"):
        store.complete_generation(job.id, file_path="a\\b.wav", file_size_bytes=1)


def test_a_store_opens_and_works_under_a_locale_that_is_not_utf_8(tmp_path: Path) -> None:
    """The named queries were read in the locale's encoding, and two SQL files hold an 'é': under LC_ALL=C
    (no UTF-8 mode) every ``Store()`` raised UnicodeDecodeError, the CLI's too."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    script = (
        "import locale, sys\n"
        "from musicstore import Store\n"
        "assert locale.getpreferredencoding(False).lower() not in ('utf-8', 'utf8')\n"
        "with Store(sys.argv[1], migrate=True) as s:\n"
        "    g = s.create_generation('caf\\u00e9 lofi', model_name='m', duration_seconds=1)\n"
        "    assert s.get_generation(g.id) == g\n"
    )
    url = f"sqlite:///{tmp_path / 'c.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script, url], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("port", ["99999", "abc", "70000"])
def test_a_bad_port_in_a_postgresql_url_is_named_as_such(port: str) -> None:
    """It was reported as a percent-encoding problem of the user name or password."""
    with pytest.raises(InvalidInput, match=f"port '{port}' is not a number") as raised:
        resolve(f"postgresql://user:Secr3t-pw@localhost:{port}/db")
    assert "Secr3t-pw" not in str(raised.value) and "percent-encode" not in str(raised.value)


@pytest.mark.parametrize("password", ["p/ss", "p[ss", "p]ss", "p#ss", "p?ss"])
def test_an_unescaped_character_in_a_password_is_still_named_as_such(password: str) -> None:
    with pytest.raises(InvalidInput, match="percent-encode") as raised:
        resolve(f"postgresql://user:{password}@localhost:5432/db")
    assert password not in str(raised.value)


_USER_TEST = """
def test_fixtures(musicstore_store, musicstore_clock):
    job = musicstore_store.create_generation("x", model_name="m", duration_seconds=1)
    assert musicstore_store.claim_next("w", lease_seconds=10).id == job.id
    musicstore_clock.advance(11)
    assert musicstore_store.requeue_expired().requeued == [job.id]
"""


@pytest.mark.parametrize(
    ("conftest", "options", "autoload"),
    [
        ("pytest_plugins = ['musicstore.testing.plugin']\n", [], True),
        ("", ["-p", "musicstore.testing.plugin"], True),
        ("", ["-p", "musicstore.testing"], False),
        ("pytest_plugins = ['musicstore.testing']\n", [], False),
        ("", [], True),
    ],
)
def test_a_project_of_its_own_may_name_the_pytest_plugin_as_well(
    tmp_path: Path, conftest: str, options: list[str], autoload: bool
) -> None:
    """A user's project naming the plugin (``pytest_plugins = ['musicstore.testing.plugin']`` in its
    conftest, or ``-p musicstore.testing.plugin``) stopped pytest before any test: the entry point loaded the
    same module under another name (pluggy's ValueError, 'Plugin already registered under a different
    name'); ``-p musicstore.testing`` (the package docs/testing.md names) without autoloading found no
    fixture."""
    import os
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text(conftest, encoding="utf-8")
    (tmp_path / "test_user.py").write_text(_USER_TEST, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    done = subprocess.run(
        [*command, *options, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("first", [None, "sqlite:///data/generations.db", 5, object()])
def test_the_seed_functions_refuse_a_first_argument_that_is_no_session(store: Store, first: Any) -> None:
    """``musicstore.get_generation(None, id)`` (or a URL, or anything but a session, store or transaction)
    raised a bare AttributeError ('... has no attribute run')."""
    job = new_job(store)
    with pytest.raises(InvalidInput, match="get_generation takes a session"):
        musicstore.get_generation(first, job.id)
    with pytest.raises(InvalidInput, match="create_generation takes a session"):
        musicstore.create_generation(first, "p", model_name="m", duration_seconds=1)
    assert musicstore.get_generation(store, job.id) == job
    assert store.count_generations() == 1


@pytest.mark.parametrize("target", ["processing", "completed"])
def test_update_generation_status_to_a_status_it_cannot_make_says_what_the_row_is(
    store: Store, target: str
) -> None:
    """Asked for processing or completed, it raised InvalidTransition without reading the row: for an
    unknown id (where every other mutation raises NotFound), and for an id that is no UUID (InvalidInput
    elsewhere), its ``.current`` None for a row that exists."""
    job = new_job(store)
    with pytest.raises(musicstore.NotFound):
        store.update_generation_status("01a2285d-0000-7000-8000-000000000000", target)
    with pytest.raises(InvalidInput, match="UUID"):
        store.update_generation_status("not-an-id", target)
    with pytest.raises(musicstore.InvalidTransition) as raised:
        store.update_generation_status(job.id, target)
    assert raised.value.current is musicstore.Status.PENDING
    assert store.get_generation(job.id) == job


def test_an_async_store_that_cannot_open_its_sqlite_file_leaves_no_thread_traceback(tmp_path: Path) -> None:
    """``asyncio.run`` of an ``AsyncStore.open`` on a path SQLite cannot open (here a folder) raised
    DatabaseError, then aiosqlite's connection thread, told to stop but not waited for, answered the closed
    event loop: 'Exception in thread ... RuntimeError: Event loop is closed' tracebacks on stderr."""
    import subprocess
    import sys

    (tmp_path / "folder").mkdir()
    script = (
        "import asyncio, sys\n"
        "from musicstore import DatabaseError\n"
        "from musicstore.aio import AsyncStore\n"
        "async def main():\n"
        "    try:\n"
        "        async with AsyncStore.open(sys.argv[1]):\n"
        "            pass\n"
        "    except DatabaseError:\n"
        "        print('refused')\n"
        "for _ in range(8):\n"
        "    asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path / 'folder'}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused"] * 8
    assert done.stderr == ""


def test_a_prompts_first_use_is_the_earliest_any_clock_saw(store: Store, clock: Any) -> None:
    """first_used_at only moves back, as last_used_at only moves forward: a process whose clock is behind
    using a prompt after another did leaves the earliest use (it kept the first writer's time)."""
    clock.advance(10)
    new_job(store, "warm pads")
    later = clock()
    clock.now = later - timedelta(seconds=5)  # another host's clock, 5 s behind
    new_job(store, "warm pads")
    prompt = store.get_prompt_by_text("warm pads")
    assert prompt is not None and prompt.used_count == 2
    assert prompt.first_used_at == later - timedelta(seconds=5) and prompt.last_used_at == later


@pytest.mark.parametrize("query", ["?mode=ro", "?", "?cache=shared&mode=memory"])
def test_a_sqlite_url_with_parameters_is_refused(tmp_path: Path, query: str) -> None:
    """SQLite URL parameters were ignored (?mode=ro opened the file read-write; migrate created it): refused,
    and nothing is created."""
    url = f"sqlite:///{tmp_path / 'x.db'}{query}"
    for call in (lambda: Store(url), lambda: Store(url, migrate=True), lambda: musicstore.migrate(url)):
        with pytest.raises(InvalidInput, match="take no parameters"):
            call()
    assert list(tmp_path.iterdir()) == []


_HOLD_THE_LOCK = """
import sys
from yoyo import get_backend
backend = get_backend(sys.argv[1])
with backend.lock():
    print("locked", flush=True)
    sys.stdin.read()  # until killed
"""


def _killed_holding_the_migration_lock(url: str) -> int:
    """A process that takes yoyo's migration lock on ``url`` and is killed (SIGKILL) holding it: its pid."""
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_LOCK, resolve(url).yoyo_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    return holder.pid


def test_a_migration_killed_holding_the_lock_does_not_stop_every_later_one(sqlite_url: str) -> None:
    """yoyo's lock is a row its holder deletes when done: a process killed mid-migration left it, and every
    later migrate() (Store(url, migrate=True), `musicstore migrate`) waited lock_timeout and failed, for
    ever. A SQLite file is one host's, so a lock whose process is gone is dropped."""
    from tests.test_schema import _from, _rollback

    _rollback(sqlite_url, "0015")
    _killed_holding_the_migration_lock(sqlite_url)
    assert musicstore.migrate(sqlite_url, lock_timeout=5) == _from("0015")
    with Store(sqlite_url, migrate=True) as store:
        assert store.count_generations() == 0


def test_a_migration_lock_held_too_long_says_who_holds_it_and_how_to_break_it(db_url: str) -> None:
    """PostgreSQL is shared by hosts: a lock row's pid says nothing there, so the lock stays, and the
    error names its process, since when, and `yoyo break-lock` (it said 'another process held the lock')."""
    from musicstore.errors import MigrationError
    from tests.test_schema import _rollback

    _rollback(db_url, "0015")  # a migration to apply (an up-to-date database takes no lock)
    if resolve(db_url).dialect == "postgres":
        pid = _killed_holding_the_migration_lock(db_url)
    else:  # a live holder: this process's pid (the lock row is what a holder leaves)
        pid = os.getpid()
        with sqlite3.connect(str(resolve(db_url).path)) as conn:
            conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, '2026-01-02', ?)", (pid,))
    with pytest.raises(MigrationError) as caught:
        musicstore.migrate(db_url, lock_timeout=0.5)
    assert f"process {pid} (since " in str(caught.value)
    assert '`yoyo break-lock --database "$(musicstore yoyo-url)"`' in str(caught.value)


@pytest.mark.parametrize("open_", ["Store", "AsyncStore", "migrate"])
def test_an_empty_database_url_is_refused_not_read_as_the_default(
    open_: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty URL (an unset variable's value) opened and migrated the default, a SQLite file in the working
    directory, where `musicstore -d ""` is a usage error: now InvalidInput, and nothing is created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MUSICSTORE_DATABASE_URL", raising=False)
    with pytest.raises(InvalidInput, match="database URL is empty"):
        if open_ == "Store":
            Store("", migrate=True)
        elif open_ == "AsyncStore":
            AsyncStore.open("", migrate=True)  # refused when called, before any await
        else:
            musicstore.migrate("")
    assert not list(tmp_path.iterdir())


def _stopped_at(number: str, *, connection_lost: bool) -> Any:
    """yoyo's record of migration ``number`` interrupted by a Ctrl-C (after the migration's steps ran), its
    connection lost first when ``connection_lost`` (a Ctrl-C inside a PostgreSQL query breaks it)."""
    from yoyo.backends.base import DatabaseBackend

    record = DatabaseBackend.mark_one

    def interrupted(backend: Any, migration: Any, log: bool = True) -> None:
        if migration.id.startswith(number):
            if connection_lost:
                backend.connection.close()
            raise KeyboardInterrupt
        record(backend, migration, log)

    return interrupted


@pytest.mark.parametrize("connection_lost", [False, True])
def test_a_migration_interrupted_before_its_record_applies_again(
    db_url: str, connection_lost: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """yoyo committed a migration's steps, then recorded it in a transaction of its own: a Ctrl-C (or a kill)
    between the two left it applied but unrecorded, and every later migrate failed ('duplicate column name:
    priority'). With its connection lost, the Ctrl-C came out as 'a migration failed (...)' (exit code 1,
    not 130) and the lock stayed. Now steps and record are one transaction, the lock is released, and the
    interrupt stays one."""
    from yoyo.backends.base import DatabaseBackend

    from tests.test_schema import _from, _rollback

    _rollback(db_url, "0008")
    with monkeypatch.context() as patch:
        patch.setattr(DatabaseBackend, "mark_one", _stopped_at("0008", connection_lost=connection_lost))
        with pytest.raises(KeyboardInterrupt):
            musicstore.migrate(db_url)
    assert musicstore.migrate(db_url, lock_timeout=2) == _from("0008")
    with Store(db_url) as store:
        assert store.create_generation("p", model_name="m", duration_seconds=1, priority=3).priority == 3


def test_a_role_that_may_only_read_opens_a_migrated_store_and_is_told_why_it_cannot_migrate(
    postgres_url: str,
) -> None:
    """migrate() took yoyo's lock (a row written) even with nothing to apply, so Store(url, migrate=True) as
    a read-only role (an API server's) waited lock_timeout (60 s) and failed, blaming 'another process held
    the migration lock' and advising break-lock: a lock nobody held. Now an up-to-date database needs no
    lock, and a refused lock row is named as what it is."""
    import psycopg

    from musicstore.errors import MigrationError
    from tests.test_schema import _rollback

    role = f"reader_{os.getpid()}"
    reader = postgres_url.replace("://musicstore@", f"://{role}@")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        assert musicstore.migrate(reader, lock_timeout=0.5) == []
        with Store(reader, migrate=True) as store:
            assert store.count_generations() == 0
        _rollback(postgres_url, "0015")
        with pytest.raises(
            MigrationError, match="cannot take the migration lock, no process holds it"
        ) as caught:
            musicstore.migrate(reader, lock_timeout=0.5)
        assert "permission denied" in str(caught.value) and "break-lock" not in str(caught.value)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_rows_without_a_column_musicstore_reads_are_a_migration_error(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schema that is not the migrations' (a later musicstore's that dropped a column, or one changed by
    hand) raised a bare ValueError ('a generations row lacks the columns stage') from every read of it, and
    the CLI printed its traceback where docs/cli promise one line and exit code 1."""
    from musicstore.cli import main
    from musicstore.errors import MigrationError

    with Store(sqlite_url) as store:
        generation = new_job(store)
    with sqlite3.connect(str(resolve(sqlite_url).path)) as conn:
        conn.execute("ALTER TABLE generations DROP COLUMN stage")
    with Store(sqlite_url) as store, pytest.raises(MigrationError, match="lacks the columns stage"):
        store.get_generation(generation.id)
    assert main(["list", "--database", sqlite_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("musicstore: error: query list_generations") and err.count("\n") == 1


# --- the CLI's sizes and durations are read exactly --------------------------------------------------------
# `--max-bytes` and `--older-than`/`--backoff` went through a float: `--max-bytes 0.5` became a budget of 0
# bytes (cleanup of everything the criteria match), `1.0005k` 1000, a byte count above 2**53 another number,
# one above 2**63 a library error naming `max_total_bytes` and a number nobody typed; `0.0000005s` became no
# age at all, and a duration of many digits lost its last microseconds.

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "gib": 2**30}


@settings(max_examples=200, deadline=None)
@given(
    whole=st.integers(0, 2**63 - 1),
    places=st.integers(0, 12),
    unit=st.sampled_from(sorted(_SIZE_UNITS)),
)
def test_a_size_argument_is_read_exactly_or_refused(whole: int, places: int, unit: str) -> None:
    import argparse
    from fractions import Fraction

    from musicstore.cli import parse_size

    text = f"{whole // 10**places}.{whole % 10**places:0{places}d}" if places else str(whole)
    exact = Fraction(whole, 10**places) * _SIZE_UNITS[unit]
    if exact.denominator == 1 and exact <= 2**63 - 1:
        assert parse_size(text + unit) == exact
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"whole number of bytes|too large a size"):
            parse_size(text + unit)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--max-bytes", "0.5"], "whole number of bytes"),
        (["--max-bytes", "1.0005kB"], "whole number of bytes"),
        (["--max-bytes", "9" * 30], "too large a size"),
        (["--older-than", "0.0000005s"], "microsecond"),
    ],
)
def test_cleanup_refuses_a_size_or_age_it_would_have_rounded_and_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    from musicstore import cli

    url = f"sqlite:///{tmp_path}/c.db"
    with Store(url, migrate=True) as s:
        made = new_job(s)
        s.cancel(made.id)
    (tmp_path / "audio").mkdir()
    root = ["-o", str(tmp_path / "audio")]
    code = cli.main(["cleanup", "-d", url, *root, "--status", "cancelled", *argv, "--apply"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and words in err and argv[0] in err, err
    with Store(url) as s:
        kept = s.get_generation(made.id)
    assert kept is not None and kept.status.value == "cancelled"


@settings(max_examples=200, deadline=None)
@given(micros=st.integers(0, 999_999_999 * 86_400 * 10**6), unit=st.sampled_from(["s", "m", "h", "d", "w"]))
def test_a_duration_argument_is_read_to_the_microsecond_or_refused(micros: int, unit: str) -> None:
    import argparse
    from fractions import Fraction

    from musicstore.cli import parse_duration

    per = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[unit]
    text = f"{micros // 10**6}.{micros % 10**6:06d}{unit}"
    exact = Fraction(micros, 10**6) * per * 10**6  # in microseconds
    if exact.denominator == 1 and exact <= timedelta.max // timedelta(microseconds=1):
        assert parse_duration(text) == timedelta(microseconds=int(exact))
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"microsecond|too long a duration"):
            parse_duration(text)


# --- a SQLite database in a folder that cannot be written says so ------------------------------------------
# SQLite in WAL mode makes the -wal and -shm files beside the database even to read it: every command on a
# database in a read-only folder (a read-only mount, a folder of another user) said only "unable to open
# database file", of a file that was there and readable.


def _read_only_launcher(tmp_path: Path) -> list[str] | None:
    """An ``unshare`` prefix under which a folder can be bind-mounted read-only here (None: none can)."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return None
    probe = tmp_path / "probe"
    probe.mkdir()
    for prefix in (["unshare", "--mount", "--"], ["unshare", "--user", "--map-root-user", "--mount", "--"]):
        mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0"'
        cmd = [*prefix, "sh", "-c", mount, str(probe)]
        if subprocess.run(cmd, check=False, capture_output=True).returncode == 0:
            return prefix
    return None


def test_a_database_in_a_read_only_folder_is_named_as_such(tmp_path: Path) -> None:
    import subprocess
    import sys

    prefix = _read_only_launcher(tmp_path)
    if prefix is None:
        if os.environ.get("CI") == "true":
            pytest.fail("cannot bind-mount a folder read-only in a private mount namespace")
        pytest.skip("cannot bind-mount a folder read-only in a private mount namespace")
    folder = tmp_path / "db"
    url = f"sqlite:///{folder}/store.db"
    with Store(url, migrate=True) as store:
        new_job(store)
    assert sorted(p.name for p in folder.iterdir()) == ["store.db"]  # closed cleanly: no -wal, no -shm
    script = (
        "import sys\n"
        "from musicstore import Store, DatabaseError\n"
        "try:\n"
        "    Store(sys.argv[1])\n"
        "except DatabaseError as exc:\n"
        "    print(exc)\n"
    )
    mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    ro = [*prefix, "sh", "-c", mount, str(folder)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    api = subprocess.run(
        [*ro, sys.executable, "-c", script, url], check=False, capture_output=True, text=True, env=env
    )
    assert api.returncode == 0 and api.stderr == "", api.stderr
    assert "read-only" in api.stdout and str(folder) in api.stdout, api.stdout
    for command in (["stats"], ["list"], ["queue"], ["migrate"]):
        argv = [*ro, sys.executable, "-m", "musicstore", *command, "-d", url]
        cli = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
        assert cli.returncode == 1 and cli.stderr.count("\n") == 1, cli.stderr
        assert "read-only file system" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr


# --- a backup or restore that fails on a full disk leaves nothing beside its destination --------------------
# The temp copy was removed, its rollback journal (".<name>.<pid>.<n>.tmp-journal") was not: one more file
# per failed attempt, kept while the process lived (a service backing up on a schedule).


def test_a_backup_or_restore_into_a_full_filesystem_leaves_no_file_beside_the_destination(
    tmp_path: Path,
) -> None:
    import json
    import subprocess
    import sys

    prefix = _read_only_launcher(tmp_path)  # a private mount namespace: a tmpfs can be mounted there too
    if prefix is None:
        if os.environ.get("CI") == "true":
            pytest.fail("cannot mount a tmpfs in a private mount namespace")
        pytest.skip("cannot mount a tmpfs in a private mount namespace")
    url = f"sqlite:///{tmp_path}/big.db"
    with Store(url, migrate=True) as store:
        for n in range(1500):
            new_job(store, f"prompt {n} " + "x" * 400)
    full = tmp_path / "full"
    full.mkdir()
    script = (
        "import json, os, sys\n"
        "from musicstore import StorageError\n"
        "from musicstore.maintenance.backup import backup, restore\n"
        "url, full = sys.argv[1], sys.argv[2]\n"
        "errors = []\n"
        "back = lambda: backup(url, full + '/b.db')\n"
        "put = lambda: restore(url[len('sqlite:///'):], 'sqlite:///' + full + '/r.db')\n"
        "for _ in range(3):\n"
        "    for call in (back, put):\n"
        "        try:\n"
        "            call()\n"
        "        except StorageError as exc:\n"
        "            errors.append(str(exc))\n"
        "print(json.dumps({'errors': errors, 'left': sorted(os.listdir(full))}))\n"
    )
    mount = 'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"'
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    argv = [*prefix, "sh", "-c", mount, str(full), sys.executable, "-c", script, url, str(full)]
    child = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout.splitlines()[-1])
    assert len(outcome["errors"]) == 6 and all("full" in e for e in outcome["errors"]), outcome
    assert outcome["left"] == [], outcome


def test_reconcile_repair_that_cannot_touch_a_read_only_root_does_not_say_it_repaired(tmp_path: Path) -> None:
    """Every move to the quarantine failed (a read-only mount): each error was printed, then the summary
    said 'repaired (see action)' of orphans whose action read 'reported'."""
    import subprocess
    import sys

    prefix = _read_only_launcher(tmp_path)
    if prefix is None:
        if os.environ.get("CI") == "true":
            pytest.fail("cannot bind-mount a folder read-only in a private mount namespace")
        pytest.skip("cannot bind-mount a folder read-only in a private mount namespace")
    url = f"sqlite:///{tmp_path}/r.db"
    Store(url, migrate=True).close()
    root = tmp_path / "audio"
    (root / "2026/01/01").mkdir(parents=True)
    for name in ("orphan.wav", "2026/01/01/other.wav"):
        (root / name).write_bytes(b"RIFF")
    mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    argv = [*prefix, "sh", "-c", mount, str(root), sys.executable, "-m", "musicstore", "reconcile"]
    argv += ["--repair", "-d", url, "-o", str(root), "--quarantine", str(tmp_path / "q")]
    child = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    assert child.returncode == 4 and child.stderr.count("Read-only file system") == 2, child.stderr
    summary = child.stdout.rstrip().splitlines()[-1]
    assert "repaired" not in summary and "with 2 errors" in summary, summary
    assert sorted(p.name for p in root.rglob("*.wav")) == ["orphan.wav", "other.wav"]

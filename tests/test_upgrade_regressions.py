"""The upgrade path: a database made at the first schema (0002), filled through SQL as each version wrote it,
migrated to the newest schema in one step, read back through the public API, rolled back to the first schema
and migrated up again."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from musicstore import AsyncStore, Store, migrate
from musicstore.delivery import Delivery
from musicstore.errors import InvalidInput
from musicstore.maintenance.usage import storage_stats
from musicstore.migrate import shipped_migrations
from musicstore.urls import resolve
from tests.test_totals import assert_totals_are_a_recount, every_generation

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2023, 3, 1, 12, 0, tzinfo=UTC)
_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgres", "postgres-icu"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (no migration applied); postgres-icu: one whose default collation is
    ICU's ``en``, not byte order (``a_c`` before ``a-c``, ``a`` before ``B``), as a database created years ago
    with a locale may have."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import psycopg

    server = request.getfixturevalue("musicstore_postgres_server")
    name = f"musicstore_upgrade_{os.getpid()}_{next(_counter)}"  # one server may serve several sessions
    if request.param == "postgres":
        server.admin(f"CREATE DATABASE {name}")
    else:
        try:
            server.admin(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en'"
            )
        except psycopg.Error as exc:  # PostgreSQL before 15, or built without ICU
            pytest.skip(f"the test server cannot create a database with an ICU collation: {exc}")
    yield server.url(name)
    server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def _backend(url: str) -> Any:
    from yoyo import get_backend

    return get_backend(resolve(url).yoyo_url)


def _apply_through(url: str, last: str) -> None:
    """Apply the shipped migrations up to ``last`` (a number, "0002") with yoyo, as an old release did."""
    from yoyo import read_migrations

    backend = _backend(url)
    try:
        with backend.lock():
            todo = backend.to_apply(read_migrations(str(ROOT / "migrations")))
            backend.apply_migrations(todo.filter(lambda m: m.id[:4] <= last))
    finally:
        backend.connection.close()


def _rollback_after(url: str, keep: str) -> None:
    """Roll back every applied migration after ``keep`` (its number), newest first."""
    from yoyo import read_migrations

    backend = _backend(url)
    try:
        with backend.lock():
            applied = backend.to_rollback(read_migrations(str(ROOT / "migrations")))
            backend.rollback_migrations(applied.filter(lambda m: m.id[:4] > keep))
    finally:
        backend.connection.close()


def _applied(url: str) -> list[str]:
    rows = _sql(url, "SELECT migration_id FROM _yoyo_migration")
    return sorted(str(r[0]) for r in rows)


def _sql(url: str, statement: str, params: list[tuple[Any, ...]] | None = None) -> list[tuple[Any, ...]]:
    """Run a statement outside the library (``?`` placeholders), once per parameter tuple."""
    if url.startswith("sqlite"):
        with sqlite3.connect(str(resolve(url).path)) as conn:
            if params is None:
                return list(conn.execute(statement).fetchall())
            conn.executemany(statement, params)
            return []
    import psycopg

    statement = statement.replace("?", "%s")
    with psycopg.connect(url, autocommit=True) as conn:
        if params is None:
            cursor = conn.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []
        with conn.cursor() as cur:
            cur.executemany(statement, params)
        return []


def _ts(url: str, moment: datetime | None) -> Any:
    """A moment as the dialect stores it: integer microseconds (SQLite) or the datetime (PostgreSQL)."""
    if moment is None or not url.startswith("sqlite"):
        return moment
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _gid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


PROMPTS = ["lofi hip hop at 90 BPM", "雨の日の ピアノ 🎹", "ambient drone, 'quoted' \"twice\"", "x" * 600]
METADATA: list[dict[str, Any]] = [
    {},
    {"user": "ana", "tags": ["a", "b"], "seed": 12345678901234},
    {"nested": {"deep": [1, 2.5, None, True]}, "ünï": "cødé"},
    {"float": 0.1, "big": 2.460214870732887e16},
]


def _fill_at_0002(url: str) -> dict[str, dict[str, Any]]:
    """Jobs in every status, prompts shared by several jobs, metadata, files: as the first release wrote them.
    Returns what each generation holds, by id."""
    # (status, prompt index, seconds after T0)
    plan = [
        ("pending", 0, 10),
        ("pending", 1, 5),
        ("pending", 0, 5),  # the same created_at as the one before: the id breaks the tie
        ("pending", 2, 20),
        ("processing", 0, 1),
        ("completed", 1, 2),
        ("completed", 0, 3),
        ("completed", 3, 4),
        ("failed", 2, 6),
        ("cancelled", 1, 7),
        ("pending", 3, 30),
    ]
    jobs: dict[str, dict[str, Any]] = {}
    uses: dict[int, int] = {}
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    for n, (status, p, after) in enumerate(plan, start=1):
        created = T0 + timedelta(seconds=after, microseconds=n if after != 5 else 0)
        uses[p] = uses.get(p, 0) + 1
        first[p] = min(first.get(p, created), created)
        last[p] = max(last.get(p, created), created)
        job: dict[str, Any] = {
            "id": _gid(n),
            "prompt": PROMPTS[p],
            "model_name": ["musicgen-small", "Musicgen-large", "m_b"][n % 3],
            "model_version": None if n % 2 else "1.0",
            "duration_seconds": 5.0 + n / 3,
            "sample_rate": 32000 if n % 2 else 48000,
            "channels": 1 + n % 2,
            "status": status,
            "created_at": created,
            "file_path": None,
            "file_size_bytes": None,
            "started_at": None,
            "completed_at": None,
            "generation_time_seconds": None,
            "error_message": None,
            "attempts": 0,
            "worker_id": None,
            "lease_expires_at": None,
            "metadata": METADATA[n % len(METADATA)],
        }
        if status in ("processing", "completed", "failed"):
            job.update(attempts=1, started_at=created + timedelta(seconds=1))
        if status == "processing":
            job.update(worker_id="gpu-0", lease_expires_at=datetime(2100, 1, 1, tzinfo=UTC))
        if status == "completed":
            job.update(
                file_path=f"2023/03/01/{_gid(n)}.wav",
                file_size_bytes=1_000_000 + n,
                completed_at=created + timedelta(seconds=9),
                generation_time_seconds=1 / 3 + n,
            )
        if status == "failed":
            job.update(
                error_message="CUDA out of memory: ünïcode", completed_at=created + timedelta(seconds=2)
            )
        if status == "cancelled":
            job.update(completed_at=created + timedelta(seconds=1))
        jobs[job["id"]] = job
    _sql(
        url,
        "INSERT INTO prompts (text, used_count, first_used_at, last_used_at) VALUES (?, ?, ?, ?)",
        [
            (PROMPTS[p], uses[p] + (2 if p == 2 else 0), _ts(url, first[p]), _ts(url, last[p]))
            for p in sorted(uses)
        ],
    )
    columns = list(next(iter(jobs.values())))
    _sql(
        url,
        f"INSERT INTO generations ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [
            tuple(
                json.dumps(v) if c == "metadata" else _ts(url, v) if isinstance(v, datetime) else v
                for c, v in job.items()
            )
            for job in jobs.values()
        ],
    )
    return jobs


def _fill_renditions_at_0007(url: str, jobs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Renditions of the completed jobs as 0007's library wrote them (the key as given: 5 and 5.0 apart)."""
    done = [j for j in jobs.values() if j["status"] == "completed"]
    rows: list[dict[str, Any]] = []
    for i, job in enumerate(done):
        for k, (fmt, codec, settings, quality) in enumerate(
            [
                ("mp3", "libmp3lame", {"format": "mp3", "bitrate_mode": "variable", "quality": 2}, 2.0),
                ("opus", "libopus", {"format": "opus", "bitrate_mode": "variable", "bitrate_kbps": 96}, None),
                ("flac", "flac", {"format": "flac", "compression": 5, "note": "ünï"}, None),
            ]
        ):
            created = job["completed_at"] + timedelta(seconds=1 + k)
            rows.append(
                {
                    "id": f"10000000-0000-4000-8000-{i * 10 + k:012d}",
                    "generation_id": job["id"],
                    "format": fmt,
                    "codec": codec,
                    "bitrate_mode": settings.get("bitrate_mode"),
                    "bitrate_kbps": settings.get("bitrate_kbps"),
                    "quality": quality,
                    "sample_rate": 48000,
                    "channels": 2,
                    "settings": {
                        **settings,
                        "sample_rate": 48000,
                        "channels": 2,
                        "profile": "streaming",
                        "target_lufs": -14.0,
                        "ceiling_dbtp": -1.0,
                    },
                    "profile": "streaming",
                    "target_lufs": -14.0,
                    "ceiling_dbtp": -1.0,
                    "storage_key": f"renditions/{job['id']}/{fmt}-{k}.{fmt}",
                    "file_size_bytes": 10_000 + i * 10 + k,
                    "duration_seconds": job["duration_seconds"],
                    "loudness_lufs": -14.05,
                    "true_peak_dbtp": -1.2,
                    "loudness_status": "normalized",
                    "checksum": f"{i * 10 + k:064x}",
                    "created_at": created,
                }
            )
    # One request recorded twice (quality 2 and 2.0 were two keys): 0018 keeps the older row only.
    twice = dict(rows[0], id="10000000-0000-4000-8000-000000000999", storage_key="renditions/twice.mp3")
    twice.update(
        settings={**rows[0]["settings"], "quality": 2.0}, created_at=rows[0]["created_at"] + timedelta(1)
    )
    columns = list(rows[0])
    _sql(
        url,
        f"INSERT INTO renditions ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [
            tuple(
                json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                if c == "settings"
                else _ts(url, v)
                if isinstance(v, datetime)
                else v
                for c, v in row.items()
            )
            for row in [*rows, twice]
        ],
    )
    by_job: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_job.setdefault(row["generation_id"], []).append(row)
    return by_job


def _fill_queue_at_0008(url: str) -> None:
    """0008's queue: a priority, owner keys (one of them limited) on pending jobs."""
    _sql(url, "UPDATE generations SET priority = 5, owner_key = 'Tenant_b' WHERE id = ?", [(_gid(11),)])
    # 2 and 3 pending, 5 processing: the lanes (0012) count it running when they are filled.
    _sql(
        url,
        "UPDATE generations SET owner_key = 'tenant-a' WHERE id = ?",
        [(_gid(2),), (_gid(3),), (_gid(5),)],
    )
    _sql(url, "INSERT INTO owner_limits (owner_key, max_running) VALUES (?, ?)", [("tenant-a", 3)])


class _Undo(Exception):
    """Raised to roll a transaction back."""


def _check_generations(store: Any, jobs: dict[str, dict[str, Any]], *, queue: bool) -> None:
    for gid, job in jobs.items():
        g = store.get_generation(gid)
        assert g is not None, gid
        for name, value in job.items():
            got = getattr(g, name)
            if name == "status":
                got = got.value
            assert got == value, (gid, name, got, value)
        if queue:
            assert (g.priority, g.owner_key) == {
                _gid(11): (5, "Tenant_b"),
                _gid(2): (0, "tenant-a"),
                _gid(3): (0, "tenant-a"),
                _gid(5): (0, "tenant-a"),
            }.get(gid, (0, None))
        else:
            assert (g.priority, g.owner_key) == (0, None)


def _check_renditions(store: Any, renditions: dict[str, list[dict[str, Any]]]) -> None:
    for gid, rows in renditions.items():
        listed = store.list_renditions(gid)
        assert sorted(r.id for r in listed) == sorted(r["id"] for r in rows)
        for r in listed:
            want = next(x for x in rows if x["id"] == r.id)
            assert r.settings == want["settings"]
            assert (r.storage_key, r.file_size_bytes, r.checksum, r.created_at) == (
                want["storage_key"],
                want["file_size_bytes"],
                want["checksum"],
                want["created_at"],
            )
            codec = {
                k: v for k, v in r.settings.items() if k not in ("profile", "target_lufs", "ceiling_dbtp")
            }
            found = store.get_rendition_by_settings(
                gid, codec, profile=r.profile, target_lufs=r.target_lufs, ceiling_dbtp=r.ceiling_dbtp
            )
            assert found == r


def _check_prompts(store: Any) -> None:
    ranked = store.get_most_used_prompts(100)  # most used first, ties by id: the first schema's ids kept
    assert [(p.id, p.text) for p in ranked] == [(1 + i, PROMPTS[i]) for i in (0, 2, 1, 3)]
    counts = {p.text: p.used_count for p in ranked}
    assert counts == {PROMPTS[0]: 4, PROMPTS[1]: 3, PROMPTS[2]: 2 + 2, PROMPTS[3]: 2}
    for text in PROMPTS:
        prompt = store.get_prompt_by_text(text)
        assert prompt is not None and prompt.used_count == counts[text]


def test_a_database_of_the_first_schema_upgrades_in_one_step_and_rolls_back(empty_url: str) -> None:
    url = empty_url
    _apply_through(url, "0002")
    assert _applied(url) == [m for m in shipped_migrations() if m[:4] <= "0002"]
    jobs = _fill_at_0002(url)
    _apply_through(url, "0007")
    renditions = _fill_renditions_at_0007(url, jobs)
    _apply_through(url, "0008")
    _fill_queue_at_0008(url)

    applied = migrate(url)  # the operator's one step to the newest schema
    assert applied == [m for m in shipped_migrations() if m[:4] > "0008"]
    with Store(url) as store:
        _check_generations(store, jobs, queue=True)
        assert [g.id for g in every_generation(store)] == sorted(
            jobs, key=lambda i: (jobs[i]["created_at"], i), reverse=True
        )
        stats = assert_totals_are_a_recount(store)
        assert stats.total == len(jobs)
        _check_prompts(store)
        _check_renditions(store, renditions)
        sync_reads = (
            every_generation(store),
            store.get_most_used_prompts(100),
            store.list_renditions(_gid(6)),
        )

        async def async_reads() -> tuple[Any, ...]:
            async with AsyncStore.open(url) as astore:
                page = await astore.list_generations(limit=100)
                return (
                    page.items,
                    await astore.get_most_used_prompts(100),
                    await astore.list_renditions(_gid(6)),
                    await astore.get_database_stats(),
                )

        *async_rows, async_stats = asyncio.run(async_reads())
        assert tuple(async_rows) == sync_reads and async_stats == stats
        depth = store.queue_depth()
        keyed = [lv.owner_key for lv in depth.levels if lv.owner_key is not None]
        assert keyed == sorted(keyed) == ["Tenant_b", "tenant-a"]  # byte order, whatever the collation
        models = list(storage_stats(store).by_model)
        assert models == sorted(models) == ["Musicgen-large", "m_b", "musicgen-small"]
        assert {(lv.owner_key, lv.priority, lv.pending, lv.oldest_created_at) for lv in depth.levels} == {
            (None, 0, 2, T0 + timedelta(seconds=10, microseconds=1)),
            ("tenant-a", 0, 2, T0 + timedelta(seconds=5)),
            ("Tenant_b", 5, 1, T0 + timedelta(seconds=30, microseconds=11)),
        }
        assert depth.running == {"tenant-a": 1}
        assert store.get_owner_limits() == {"tenant-a": 3}
        # The documented order (docs/queue.md): the highest priority, then the lane with the fewest running
        # (ties: the one served longest ago), then the oldest. Claimed in a transaction rolled back.
        with pytest.raises(_Undo), store.transaction() as tx:
            order = [tx.claim_next("w") for _ in range(6)]
            raise _Undo
        assert [c.id if c else None for c in order] == [_gid(n) for n in (11, 1, 2, 4, 3)] + [None]

    # All the way down to the first schema, and up again: the 0.1 data intact (queue fields, renditions and
    # storage columns are documented losses of 0008's, 0007's and 0006's rollbacks).
    _rollback_after(url, "0002")
    assert _applied(url) == [m for m in shipped_migrations() if m[:4] <= "0002"]
    back = _sql(url, "SELECT id, prompt, status, metadata FROM generations")
    assert sorted((r[0], r[1], r[2], json.loads(r[3])) for r in back) == sorted(
        (j["id"], j["prompt"], j["status"], j["metadata"]) for j in jobs.values()
    )
    assert migrate(url) == [m for m in shipped_migrations() if m[:4] > "0002"]
    with Store(url) as store:
        _check_generations(store, jobs, queue=False)
        assert_totals_are_a_recount(store)
        _check_prompts(store)
        # The queue claims the pending jobs oldest first (created_at, then id) when no priority or key is set.
        pending = sorted(
            (j for j in jobs.values() if j["status"] == "pending"), key=lambda j: (j["created_at"], j["id"])
        )
        claimed = [store.claim_next("w") for _ in pending]
        assert [c.id if c else None for c in claimed] == [j["id"] for j in pending]
        assert store.claim_next("w") is None
        assert_totals_are_a_recount(store)


def test_the_migrate_command_upgrades_a_first_schema_database(empty_url: str) -> None:
    """``musicstore migrate`` on a database of the first schema: every later migration once, then none."""
    import subprocess
    import sys

    url = empty_url
    _apply_through(url, "0002")
    jobs = _fill_at_0002(url)

    def command(*args: str) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "musicstore", *args, "--database", url, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = command("migrate")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["applied"] == [m for m in shipped_migrations() if m[:4] > "0002"]
    again = command("migrate")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["applied"] == []
    with Store(url) as store:
        _check_generations(store, jobs, queue=False)
        assert_totals_are_a_recount(store)
        _check_prompts(store)


def test_a_first_schema_file_path_over_1024_characters_upgrades(empty_url: str, tmp_path: Path) -> None:
    """The first schema's library took a completed job's file_path of any length (relative, no '..'); 0006
    copied it into storage_key, whose CHECK allows 1,024 characters, so migrating such a database failed at
    0006 (CHECK constraint) and stayed there. It upgrades, the row read back as it was."""
    url = empty_url
    _apply_through(url, "0002")
    jobs = _fill_at_0002(url)
    long_path = "/".join(f"{i:03d}-" + "n" * 195 for i in range(6)) + ".wav"  # 1,205 characters
    done = _gid(6)
    _sql(url, "UPDATE generations SET file_path = ? WHERE id = ?", [(long_path, done)])
    jobs[done]["file_path"] = long_path

    assert migrate(url) == [m for m in shipped_migrations() if m[:4] > "0002"]
    with Store(url) as store, Delivery(store, root=tmp_path) as delivery:
        _check_generations(store, jobs, queue=False)
        assert_totals_are_a_recount(store)
        generation = store.get_generation(done)
        assert generation is not None
        # A key of a file store is at most 1,024 bytes: its file is not served (a typed error, documented).
        with pytest.raises(InvalidInput, match="at most 1024"):
            delivery.read_audio(generation)
        assert _sql(url, f"SELECT storage_key FROM generations WHERE id = '{done}'") == [(None,)]


def test_first_schema_metadata_holding_a_nul_is_read_by_the_metrics_on_both_backends(empty_url: str) -> None:
    """The first versions took a NUL in a metadata string (written "\\u0000" in its JSON, which json, not
    jsonb, holds on PostgreSQL); later versions refuse it, but upgraded rows keep it. PostgreSQL's metrics
    query read metadata as jsonb, which refuses \\u0000: read_metrics (/metrics, the dashboard) failed on the
    whole database for one such row, where SQLite read it."""
    from musicstore.metrics import read_metrics

    url = empty_url
    _apply_through(url, "0002")
    _fill_at_0002(url)
    _sql(
        url,
        "UPDATE generations SET metadata = ? WHERE id = ?",
        [
            ('{"note":"a\\u0000b","loudness_lufs":-14.5,"true_peak_dbtp":-1.5}', _gid(6)),
            ('{"loudness_lufs":-9.0,"true_peak_dbtp":"n/a"}', _gid(7)),
        ],
    )
    migrate(url)
    with Store(url) as store:
        generation = store.get_generation(_gid(6))
        assert generation is not None and generation.metadata["note"] == "a\x00b"
        snapshot = read_metrics(store)
    assert (snapshot.loudness.count, snapshot.loudness.total) == (2, -23.5)
    assert (snapshot.true_peak.count, snapshot.true_peak.total) == (1, -1.5)


def test_first_schema_metadata_holding_a_nul_leaves_maintenance_working_on_both_backends(
    empty_url: str, tmp_path: Path
) -> None:
    """The same row (a NUL in a metadata string, taken by the first versions): PostgreSQL's maintenance
    queries read each completed row's recorded peaks as jsonb, so reconcile, cleanup and copy_files failed
    on the whole database (DatabaseError: unsupported Unicode escape sequence), where SQLite ran them."""
    from musicstore.maintenance.reconcile import reconcile
    from musicstore.maintenance.relocate import copy_files
    from musicstore.maintenance.retention import cleanup

    url = empty_url
    _apply_through(url, "0002")
    jobs = _fill_at_0002(url)
    _sql(url, "UPDATE generations SET metadata = ? WHERE id = ?", [('{"note":"a\\u0000b"}', _gid(6))])
    migrate(url)
    root = tmp_path / "audio"
    for job in jobs.values():
        if job["status"] == "completed":
            (root / job["file_path"]).parent.mkdir(parents=True, exist_ok=True)
            (root / job["file_path"]).write_bytes(b"\0" * job["file_size_bytes"])
    with Store(url) as store:
        report = reconcile(store, root)
        assert (report.rows_checked, report.referenced_files, report.dangling_count) == (3, 3, 0)
        assert report.orphan_count == 0
        swept = cleanup(store, root, statuses=["completed"], dry_run=True)
        assert swept.dry_run and swept.rows_deleted == 3 and not swept.errors
        copied = copy_files(store, tmp_path / "elsewhere", source=root, dry_run=True)
        assert copied.generations_seen == 3


def test_a_migration_that_fails_on_the_way_up_is_named(empty_url: str) -> None:
    """An upgrade of many migrations in one step that stops at one of them says which (the database holds
    every migration before it, and nothing of it): the message named none, only the database's words."""
    from musicstore.errors import MigrationError

    url = empty_url
    _apply_through(url, "0002")
    _fill_at_0002(url)
    # Something of the operator's own in the way of 0003 (an index of that name, made by hand).
    _sql(url, "CREATE INDEX generations_file_path ON generations (model_name)")
    with pytest.raises(MigrationError, match=r"migration 0003\.keyset-indexes failed") as raised:
        migrate(url)
    assert "generations_file_path" in str(raised.value)
    assert _applied(url) == [m for m in shipped_migrations() if m[:4] <= "0002"]
    _sql(url, "DROP INDEX generations_file_path")
    assert migrate(url) == [m for m in shipped_migrations() if m[:4] > "0002"]


def test_rows_the_newest_version_wrote_survive_a_rollback_to_the_first_schema_and_back(
    empty_url: str,
) -> None:
    """After the one-step upgrade, the newest version writes what only it can (priorities, owner keys,
    idempotency keys, progress, retries with a run_after, renditions, prompts on several shards); rolled
    back to the first schema and migrated up again, its jobs, prompts and totals are intact, less what the
    rollbacks document as lost (queue fields, progress, renditions, storage columns)."""
    from musicstore import RetryPolicy

    url = empty_url
    _apply_through(url, "0002")
    _fill_at_0002(url)
    migrate(url)
    with Store(url) as store:
        made = [
            store.create_generation(
                f"new prompt {i % 3}",
                model_name="musicgen-small",
                duration_seconds=4 + i,
                priority=i - 2,
                owner_key=None if i % 2 else f"user-{i}",
                idempotency_key=f"req-{i}",
                metadata={"i": i},
            )
            for i in range(5)
        ]
        claimed = store.claim_next("gpu-1")
        assert claimed is not None
        store.report_progress(claimed.id, "gpu-1", 0.5, "decoding")
        store.complete_generation(
            claimed.id, file_path=f"new/{claimed.id}.wav", file_size_bytes=77, worker_id="gpu-1"
        )
        store.create_rendition(
            claimed.id,
            storage_key=f"renditions/{claimed.id}.mp3",
            settings={
                "format": "mp3",
                "sample_rate": 48000,
                "channels": 2,
                "bitrate_mode": "variable",
                "quality": 2,
            },
            profile="streaming",
            target_lufs=-14,
            ceiling_dbtp=-1,
            file_size_bytes=10,
            duration_seconds=4,
            loudness_lufs=-14,
            true_peak_dbtp=-1.5,
            loudness_status="normalized",
            checksum="0" * 64,
        )
        again = store.claim_next("gpu-1")
        assert again is not None
        store.fail(again.id, "oom", backoff=RetryPolicy(base_seconds=60, cap_seconds=60, jitter=0))
        store.track_prompt_usage("new prompt 0")
        before = every_generation(store)
        prompts = store.get_most_used_prompts(100)
        stats = assert_totals_are_a_recount(store)

    _rollback_after(url, "0002")
    assert migrate(url) == [m for m in shipped_migrations() if m[:4] > "0002"]
    with Store(url) as store:
        after = {g.id: g for g in every_generation(store)}
        assert sorted(after) == sorted(g.id for g in before)
        for g in before:
            assert after[g.id] == replace(
                g, priority=0, run_after=None, owner_key=None, idempotency_key=None,
                progress=None, stage=None, progress_at=None,
            )  # fmt: skip
        assert store.get_most_used_prompts(100) == prompts
        assert assert_totals_are_a_recount(store) == stats
        assert made[0].id in after


def test_a_store_warns_on_a_database_a_later_musicstore_migrated(empty_url: str) -> None:
    """A database holding musicstore migrations numbered past the newest this version ships (a later version
    migrated it) opens with NewerSchemaWarning naming them, sync and async: before, it opened without a word
    and this version's figures there could be wrong (c75fd6d: before 0020, stats 16 times too high). A user's
    own migration in yoyo's table is not compared; a database at this version's schema opens silently."""
    import warnings

    from musicstore.errors import NewerSchemaWarning

    migrate(empty_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NewerSchemaWarning)
        Store(empty_url).close()
    newest = int(max(shipped_migrations())[:4])
    later = f"{newest + 1:04d}.from-a-later-version"
    _sql(
        empty_url,
        "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) VALUES (?, ?, ?)",
        [("h1", later, datetime(2027, 1, 1)), ("h2", "add-our-own-table", datetime(2027, 1, 1))],
    )
    with pytest.warns(NewerSchemaWarning, match=later) as warned:
        store = Store(empty_url)
    try:
        assert "add-our-own-table" not in str(warned[0].message)
        assert warned[0].filename == __file__  # points at the caller's line
        assert store.get_database_stats().total == 0  # it still opens and works
    finally:
        store.close()

    async def opened() -> None:
        async with await AsyncStore.open(empty_url):
            pass

    with pytest.warns(NewerSchemaWarning, match=later):
        asyncio.run(opened())


def test_the_cli_says_a_later_musicstore_migrated_the_database_in_one_line(empty_url: str) -> None:
    """The command line shows NewerSchemaWarning as it shows its errors: one line on stderr, ``musicstore:
    warning: ...``, and the command goes on (exit 0), not Python's two-line warning naming a source file."""
    import subprocess
    import sys

    migrate(empty_url)
    later = f"{int(max(shipped_migrations())[:4]) + 1:04d}.from-a-later-version"
    _sql(
        empty_url,
        "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) VALUES (?, ?, ?)",
        [("h1", later, datetime(2027, 1, 1))],
    )
    result = subprocess.run(
        [sys.executable, "-m", "musicstore", "stats", "--database", empty_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicstore: warning: "), result.stderr
    assert later in lines[0] and ".py:" not in lines[0]

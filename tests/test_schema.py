"""Migrations (``yoyo apply`` and ``migrate()``), WAL, constraints in SQL, indexes, and the built wheel."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from musicstore import Store, migrate
from musicstore.migrate import shipped_migrations

ROOT = Path(__file__).resolve().parent.parent
YOYO = Path(sys.executable).parent / "yoyo"


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_yoyo_apply_alone_migrates_to_wal_with_the_shipped_ini(tmp_path: Path) -> None:
    """``yoyo apply`` from the repository root, as an operator runs it, on the default URL."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "yoyo.ini").write_text((ROOT / "yoyo.ini").read_text())
    (work / "migrations").symlink_to(ROOT / "migrations")
    assert (ROOT / "data" / ".gitkeep").exists()  # a clone has an empty data/ for the default database
    (work / "data").mkdir()
    result = subprocess.run([str(YOYO), "apply"], cwd=work, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    database = work / "data" / "generations.db"
    assert _journal_mode(database) == "wal"
    with Store(f"sqlite:///{database}") as store:
        assert store.count_generations() == 0


def test_yoyo_apply_takes_the_url_from_the_environment(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere.db"
    env = {**os.environ, "MUSICSTORE_DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(
        [str(YOYO), "apply", "--database", env["MUSICSTORE_DATABASE_URL"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _journal_mode(database) == "wal"


def test_migrate_is_idempotent_and_sets_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'dir' / 'x.db'}"
    assert migrate(url) == shipped_migrations()
    assert migrate(url) == []
    assert _journal_mode(tmp_path / "sub" / "dir" / "x.db") == "wal"


def test_rollback_removes_the_schema(tmp_path: Path) -> None:
    from yoyo import get_backend, read_migrations

    path = tmp_path / "r.db"
    migrate(f"sqlite:///{path}")
    backend = get_backend(f"sqlite:///{path}")
    migrations = read_migrations(str(ROOT / "migrations"))
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))
    tables = {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert not tables & {"generations", "prompts", "generation_totals", "prompt_totals"}
    assert migrate(f"sqlite:///{path}") == shipped_migrations()


def _raw(db_url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("INSERT INTO prompts (text, used_count, first_used_at, last_used_at) VALUES ('p', 1, 0, 0)")
    return conn


GOOD_ROW = {
    "id": "01a20180-5e48-7dc6-afbf-cdf54fb09fcb",
    "prompt": "p",
    "model_name": "m",
    "duration_seconds": 30.0,
    "sample_rate": 32000,
    "channels": 2,
    "status": "pending",
    "created_at": 0,
    "metadata": "{}",
}


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"sample_rate": 0},
        {"sample_rate": -1},
        {"duration_seconds": 0.0},
        {"duration_seconds": -3.0},
        {"channels": 0},
        {"channels": 9},
        {"metadata": "[1, 2]"},
        {"metadata": "not json"},
        {"prompt": "not a known prompt"},
        {"id": "short"},
        {"status": "processing"},
        {"status": "completed"},
        {"sample_rate": "fast"},
    ],
)
def test_schema_constraints_hold_without_python(sqlite_url: str, change: dict[str, object]) -> None:
    conn = _raw(sqlite_url)
    row = {**GOOD_ROW, **change}
    columns = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(f"INSERT INTO generations ({columns}) VALUES ({marks})", row)
    conn.execute(f"INSERT INTO generations ({columns}) VALUES ({marks})", GOOD_ROW)  # the good row passes


def test_indexes_serve_the_real_queries_and_none_is_redundant(sqlite_url: str) -> None:
    conn = _raw(sqlite_url)
    indexes = {
        r[0]: r[1] for r in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")
    }
    named = {name for name in indexes if not name.startswith("sqlite_autoindex")}
    assert named == {"generations_status_created_at", "generations_created_at", "prompts_used_count"}
    columns = {name: [r[2] for r in conn.execute(f"PRAGMA index_info({name})")] for name in indexes}
    assert columns["generations_status_created_at"] == ["status", "created_at"]
    for name, cols in columns.items():  # no index is a prefix of another on the same table
        for other, other_cols in columns.items():
            if name != other and indexes[name] == indexes[other]:
                assert other_cols[: len(cols)] != cols, f"{name} is redundant with {other}"
    plan = " ".join(
        r[3]
        for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at"
        )
    )
    assert "generations_status_created_at" in plan


@pytest.mark.slow
def test_built_wheel_carries_sql_and_migrations_and_works_installed(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a folder, and migrate + use a database from there."""
    dist = tmp_path / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0 and "hatchling" in build.stderr:
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)],
            capture_output=True,
            text=True,
            check=False,
        )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("musicstore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "musicstore/sql/common/generations.sql" in names
    assert "musicstore/migrations/0002.initial-schema.py" in names
    assert "musicstore/migrations/sqlite/0002.initial-schema.sql" in names
    assert "musicstore/migrations/postgres/0002.initial-schema.sql" in names
    assert "musicstore/py.typed" in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        check=True,
    )
    script = (
        "import musicstore, sys\n"
        f"assert musicstore.__file__.startswith({str(site)!r}), musicstore.__file__\n"
        f"url = 'sqlite:///{tmp_path}/installed.db'\n"
        "print(musicstore.migrate(url))\n"
        "store = musicstore.Store(url)\n"
        "job = store.create_generation('from the wheel', model_name='m', duration_seconds=1)\n"
        "assert store.claim_next('w').id == job.id\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(shipped_migrations()), "ok"]

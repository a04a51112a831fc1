"""migrate() says at once what is wrong with a database it cannot migrate, as a MigrationError."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicstore import migrate
from musicstore.errors import MigrationError


def test_a_file_that_is_not_a_database_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database at all " * 200)
    started = time.monotonic()
    with pytest.raises(MigrationError, match="file is not a database"):
        migrate(f"sqlite:///{path}", lock_timeout=30.0)
    assert time.monotonic() - started < 25.0  # not yoyo's lock loop retrying until its timeout
    assert path.read_bytes() == b"not a database at all " * 200


def test_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"x" * 4096)
    result = subprocess.run(
        [sys.executable, "-m", "musicstore", "migrate", "--database", f"sqlite:///{path}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "file is not a database" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_postgresql_without_the_extra_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None\n"
        "from musicstore import migrate\n"
        "from musicstore.errors import MigrationError\n"
        "try:\n"
        "    migrate('postgresql://user:hunter2-secret@127.0.0.1:1/db')\n"
        "except MigrationError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MigrationError ") and "musicstore[postgres]" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr

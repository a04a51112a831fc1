"""Crash and race findings on the SQLite backup and restore (musicstore.maintenance.backup)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.maintenance.backup import backup, integrity, restore


def made(sqlite_url: str, prompt: str = "one") -> None:
    with Store(sqlite_url) as store:
        store.create_generation(prompt, model_name="m", duration_seconds=1.0)


def test_backup_without_overwrite_never_clobbers_a_file_that_appears_meanwhile(
    sqlite_url: str, tmp_path: Path
) -> None:
    """``backup(overwrite=False)`` checked ``dest.exists()`` before the copy and renamed onto ``dest`` after
    it: a file put there during the copy was replaced without a word."""
    made(sqlite_url)
    dest = tmp_path / "copy.db"

    def appears(pages: int) -> None:
        dest.write_bytes(b"another process's file")

    with pytest.raises(InvalidInput, match="exists"):
        backup(sqlite_url, dest, pages=1, progress=appears)
    assert dest.read_bytes() == b"another process's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "musicstore.db"]  # no temp left
    backup(sqlite_url, dest, overwrite=True)  # overwrite=True replaces it, as before
    assert integrity(dest) == "ok"


def test_restore_without_overwrite_never_clobbers_a_database_that_appears_meanwhile(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The same check-then-rename race in ``restore(overwrite=False)``."""
    made(sqlite_url)
    copy = tmp_path / "copy.db"
    backup(sqlite_url, copy)
    target = tmp_path / "target.db"

    def appears(pages: int) -> None:
        target.write_bytes(b"another process's database")

    with pytest.raises(InvalidInput, match="exists"):
        restore(copy, f"sqlite:///{target}", progress=appears)
    assert target.read_bytes() == b"another process's database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "musicstore.db", "target.db"]


def test_without_hard_links_backup_falls_back_to_check_then_rename(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without hard links (FAT answers link(2) with EPERM) still takes a backup: the
    destination is checked once more just before the rename."""
    made(sqlite_url)

    def no_links(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    dest = tmp_path / "copy.db"
    assert backup(sqlite_url, dest).integrity == "ok" and integrity(dest) == "ok"

    def appears(pages: int) -> None:
        (tmp_path / "late.db").write_bytes(b"kept")

    with pytest.raises(InvalidInput, match="exists"):
        backup(sqlite_url, tmp_path / "late.db", pages=1, progress=appears)
    assert (tmp_path / "late.db").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "late.db", "musicstore.db"]


KILLED_MID_BACKUP = """
import sys, time
from musicstore.maintenance.backup import backup

def stall(pages: int) -> None:
    if pages >= 2:
        print("copying", flush=True)
        time.sleep(120)

backup(sys.argv[1], sys.argv[2], pages=1, progress=stall)
"""


def test_a_backup_removes_the_temps_that_a_killed_backup_left(sqlite_url: str, tmp_path: Path) -> None:
    """A backup killed with SIGKILL left ``.<name>.<pid>.<ns>.tmp`` beside its destination forever; the next
    backup or restore to that name removes it (and its -journal), and only it: never a live process's, never
    one of another name nor a name that only looks alike."""
    made(sqlite_url)
    folder = tmp_path / "backups"
    folder.mkdir()
    dest = folder / "copy.db"
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_BACKUP, sqlite_url, str(dest)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert killed.stdout is not None and killed.stdout.readline().strip() == "copying"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    dead = killed.pid
    left = [p.name for p in folder.iterdir()]
    assert left and all(name.startswith(f".copy.db.{dead}.") for name in left), left
    stale = [*left, f".copy.db.{dead}.7.tmp-journal"]
    kept = [
        f".copy.db.{os.getpid()}.1.tmp",  # a live process's (this one's)
        f".copy.db.{os.getpid()}.1.tmp-journal",
        f".other.db.{dead}.1.tmp",  # another destination's
        f".copy.db.{dead}.tmp",  # names that only look alike
        f".copy.db.{dead}.1.tmp.bak",
        f"copy.db.{dead}.1.tmp",
        f".copy.db.x{dead}.1.tmp",
        ".copy.db.0.1.tmp",
    ]
    for name in [*stale, *kept]:
        (folder / name).write_bytes(b"x")
    (folder / f".copy.db.{dead}.8.tmp").mkdir()  # not a file: left alone

    assert backup(sqlite_url, dest).integrity == "ok"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*kept, f".copy.db.{dead}.8.tmp", "copy.db"])

    target = tmp_path / "restored.db"
    (tmp_path / f".restored.db.{dead}.1.tmp").write_bytes(b"x")
    (tmp_path / f".restored.db.{os.getpid()}.1.tmp").write_bytes(b"x")
    restore(dest, f"sqlite:///{target}")
    assert not (tmp_path / f".restored.db.{dead}.1.tmp").exists()
    assert (tmp_path / f".restored.db.{os.getpid()}.1.tmp").exists()


WAL_ONLY = """
import os, sys
from musicstore import Store

store = Store(sys.argv[1])
store.create_generation("only in the wal", model_name="m", duration_seconds=1.0)
os._exit(0)  # a crash: no close, so no checkpoint; the commit lives in -wal only
"""

KILLED_MID_RESTORE = """
import os, signal, sys
from musicstore.maintenance.backup import restore

real = os.replace

def replace(src, dst):
    if os.fspath(dst) == sys.argv[3]:  # the copy about to take the old database's place
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)

os.replace = replace
restore(sys.argv[1], sys.argv[2], overwrite=True)
"""


def test_a_restore_killed_midway_loses_nothing_the_old_database_committed(
    sqlite_url: str, tmp_path: Path
) -> None:
    """restore moved the old database's -wal aside, then renamed the copy into place: killed between the two,
    the old database was left without its WAL, and the transactions committed in it were gone. The WAL is
    checkpointed into the database first now."""
    made(sqlite_url, "before")
    copy = tmp_path / "copy.db"
    backup(sqlite_url, copy)
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", WAL_ONLY, sqlite_url], cwd=root, check=True)
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    assert Path(f"{db}-wal").stat().st_size > 0
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RESTORE, str(copy), sqlite_url, str(db)], check=False, cwd=root
    )
    assert killed.returncode == -signal.SIGKILL
    assert integrity(db) == "ok"
    with Store(sqlite_url) as store:
        assert sorted(g.prompt for g in store.list_generations().items) == ["before", "only in the wal"]

    restore(copy, sqlite_url, overwrite=True)  # run again, it finishes; the killed one's temp is removed
    with Store(sqlite_url) as store:
        assert [g.prompt for g in store.list_generations().items] == ["before"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "musicstore.db"]


def test_restore_over_a_database_sqlite_cannot_read_still_sets_its_logs_aside(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A corrupt database (a reason to restore) cannot be checkpointed: its logs are moved aside and
    removed as before, never replayed onto the backup."""
    made(sqlite_url)
    copy = tmp_path / "copy.db"
    backup(sqlite_url, copy)
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 1000)
    Path(f"{broken}-wal").write_bytes(b"not a log" * 1000)
    restore(copy, f"sqlite:///{broken}", overwrite=True)
    assert integrity(broken) == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.db", "copy.db", "musicstore.db"]

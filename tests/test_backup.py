"""Online SQLite backup while 4 processes write, and restore."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from musicstore import InvalidInput, Store
from musicstore.maintenance.backup import backup, in_use, integrity, restore
from musicstore.ops import generations_after

WRITER = textwrap.dedent(
    """
    import os, sys
    from musicstore import Store

    url, log, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    with Store(url, busy_timeout=30) as store, open(log, "a") as out:
        n = 0
        while not os.path.exists(stop):
            job = store.create_generation(f"{log} take {n}", model_name="writer", duration_seconds=5.0,
                                          metadata={"pad": "x" * 2000})
            out.write(job.id + "\\n")  # written only after the commit: a logged id is a committed row
            out.flush()
            n += 1
    """
)


def all_ids(url: str) -> list[str]:
    found: list[str] = []
    with Store(url) as store:
        after = ""
        while page := store.run(generations_after, after, 1000):
            found += [g.id for g in page]
            after = page[-1].id
        assert store.get_database_stats().total == len(found)  # the totals triggers agree with the rows
    return found


def logged(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if len(line) == 36]


@pytest.mark.slow
def test_backup_while_four_processes_write_restores_every_committed_row(
    sqlite_url: str, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    logs = [tmp_path / f"writer-{n}.log" for n in range(4)]
    root = Path(__file__).resolve().parent.parent
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, sqlite_url, str(log), str(stop)], cwd=root)
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 60
        while min((len(logged(log)) if log.exists() else 0) for log in logs) < 200:
            assert time.monotonic() < deadline, "writers too slow"
            assert all(w.poll() is None for w in writers)
            time.sleep(0.05)
        before = {log: logged(log) for log in logs}  # committed before the backup began
        steps: list[int] = []
        report = backup(sqlite_url, tmp_path / "backup.db", pages=16, progress=steps.append)
        after = {log: logged(log) for log in logs}
        assert all(w.poll() is None for w in writers), "the writers kept writing throughout"
        # a writer's second row logged after ``after`` was read began after the backup ended (its first
        # may have committed before): wait for one, so the live database went on past the snapshot however
        # the writers are scheduled (before, the stop could come before any of them committed again)
        deadline = time.monotonic() + 60
        while all(len(logged(log)) < len(after[log]) + 2 for log in logs):
            assert time.monotonic() < deadline, "the writers stopped writing after the backup"
            assert all(w.poll() is None for w in writers)
            time.sleep(0.01)
    finally:
        stop.touch()
        for w in writers:
            w.wait(timeout=60)
    assert all(w.returncode == 0 for w in writers)
    assert report.integrity == "ok" and integrity(tmp_path / "backup.db") == "ok"
    assert len(steps) > 3 and steps == sorted(steps) and steps[-1] == report.pages

    restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
    restore(tmp_path / "backup.db", restored_url)
    assert integrity(tmp_path / "restored.db") == "ok"
    ids = set(all_ids(restored_url))
    for log in logs:
        # every row committed before the backup began is there, and each writer's rows form a prefix of
        # its commits: the copy is one consistent snapshot, never a mix of moments
        n = sum(1 for gid in after[log] if gid in ids)
        assert after[log][:n] == [gid for gid in after[log] if gid in ids]
        assert n >= len(before[log])
    assert len(ids) == sum(len(set(after[log]) & ids) for log in logs)
    assert len(set(all_ids(sqlite_url))) > len(ids)  # the live database went on past the snapshot


def test_backup_and_restore_round_trip_and_refusals(sqlite_url: str, tmp_path: Path) -> None:
    with Store(sqlite_url) as store:
        store.create_generation("one", model_name="m", duration_seconds=1.0)
    target = tmp_path / "copy.db"
    report = backup(sqlite_url, target, pages=-1)
    assert report.pages > 0 and report.bytes == target.stat().st_size
    assert not Path(f"{target}-wal").exists()
    with pytest.raises(InvalidInput, match="exists"):
        backup(sqlite_url, target)
    backup(sqlite_url, target, overwrite=True)
    with pytest.raises(InvalidInput, match="pg_dump"):
        backup("postgresql://user@localhost/db", target)
    with pytest.raises(InvalidInput, match="pg_dump"):
        restore(target, "postgresql://user@localhost/db")
    with pytest.raises(InvalidInput, match="database itself"):
        backup(sqlite_url, Path(sqlite_url.removeprefix("sqlite:///")), overwrite=True)
    with pytest.raises(InvalidInput, match="does not exist"):
        backup(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "x.db")

    live = tmp_path / "live.db"
    live_url = f"sqlite:///{live}"
    restore(target, live_url)
    with pytest.raises(InvalidInput, match="exists"):
        restore(target, live_url)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from musicstore import Store; s = Store(sys.argv[1]); "
            "s.get_database_stats(); print('open', flush=True); time.sleep(60)",
            live_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert in_use(live)
        with pytest.raises(InvalidInput, match="open in another process"):
            restore(target, live_url, overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    restore(target, live_url, overwrite=True)
    with Store(live_url) as restored:
        assert [g.prompt for g in restored.list_generations().items] == ["one"]

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(InvalidInput, match="integrity_check"):
        restore(broken, f"sqlite:///{tmp_path / 'other.db'}")


def test_backup_refuses_the_database_itself_however_spelled(sqlite_url: str) -> None:
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    (db.parent / "sub").mkdir()
    (db.parent / "link.db").symlink_to(db)
    with Store(sqlite_url) as store:
        store.create_generation("x", model_name="m", duration_seconds=1)
        inode = db.stat().st_ino
        for spelled in (db.parent / "sub" / ".." / db.name, db.parent / "link.db", Path(f"{db}-wal")):
            with pytest.raises(InvalidInput, match="the database itself"):
                backup(sqlite_url, spelled, overwrite=True)
        assert db.stat().st_ino == inode and store.count_generations() == 1

"""Session 23's hunt in metrics and backup/restore: each test failed before its fix (or pins a documented
promise: the restored copy's running totals equal a recount of its rows, on both backends)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, Store
from musicstore.metrics import read_metrics

GEN: dict[str, Any] = {"model_name": "musicgen-small", "duration_seconds": 10}


def _rows(store: Store) -> list[Generation]:
    rows: list[Generation] = []
    cursor = None
    while True:
        page = store.list_generations(limit=1000, cursor=cursor)
        rows += page.items
        cursor = page.next_cursor
        if cursor is None:
            return rows


def _assert_totals_match_rows(store: Store) -> None:
    s = read_metrics(store)
    rows = _rows(store)
    assert s.by_status == {k: sum(g.status.value == k for g in rows) for k in s.by_status}
    assert s.by_model == dict(Counter((g.model_name, g.status.value) for g in rows))
    for status in s.by_status:
        of = [g for g in rows if g.status.value == status]
        assert s.file_bytes[status] == sum(g.file_size_bytes or 0 for g in of)
        assert s.audio_seconds[status] == pytest.approx(sum(g.duration_seconds for g in of))
    assert s.prompts == len({g.prompt for g in rows})


def _history(store: Store) -> None:
    for i in range(12):
        store.create_generation(
            f"p{i % 5}", **GEN, priority=i % 3 - 1, owner_key=f"k{i % 2}" if i % 3 else None
        )
    for i in range(8):
        g = store.claim_next(f"w{i % 2}")
        assert g is not None
        if i % 3 == 0:
            store.complete_generation(
                g.id, file_path=f"{g.id}.wav", file_size_bytes=100 + i, generation_time_seconds=1.0
            )
        elif i % 3 == 1:
            store.fail(g.id, "boom", retry=i % 2 == 0)
        else:
            store.cancel(g.id)


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="no pg_dump")
def test_pg_dump_and_pg_restore_as_documented_give_a_working_store(
    musicstore_postgres_server: Any, postgres_url: str, tmp_path: Path
) -> None:
    # docs/maintenance.md and docs/operations.md: pg_dump --format=custom, createdb, pg_restore --dbname
    with Store(postgres_url) as store:
        _history(store)
    dump = tmp_path / "musicstore.dump"
    subprocess.run(
        [
            "pg_dump",
            "--format=custom",
            f"--file={dump}",
            postgres_url,
        ],
        check=True,
    )
    name = postgres_url.rsplit("/", 1)[1].split("?", maxsplit=1)[0] + "_restored"
    musicstore_postgres_server.admin(f"CREATE DATABASE {name}")
    try:
        restored = musicstore_postgres_server.url(name)
        subprocess.run(["pg_restore", f"--dbname={restored}", str(dump)], check=True)
        with Store(restored) as store:
            assert len(_rows(store)) == 12
            _assert_totals_match_rows(store)
            _history(store)  # it takes writes, claims and the totals' triggers as the original did
            store.create_generation("a prompt first used after the restore", **GEN)  # the identity's next id
            _assert_totals_match_rows(store)
    finally:
        musicstore_postgres_server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_restore_through_a_symlink_replaces_the_database_it_names_not_the_link(tmp_path: Path) -> None:
    # SQLite opens the file a symlink names (its -wal and -shm beside that file): restore replaced the link
    # itself with a plain file beside it, so the database moved off the volume the link pointed to, and the
    # old database (with its -wal) stayed there, where nothing opened it again
    from musicstore.maintenance.backup import backup, restore

    (tmp_path / "volume").mkdir()
    real, link = tmp_path / "volume" / "generations.db", tmp_path / "generations.db"
    with Store(f"sqlite:///{real}", migrate=True) as store:
        store.create_generation("kept in the backup", **GEN)
    backup(f"sqlite:///{real}", tmp_path / "backup.db")
    link.symlink_to(real)
    with Store(f"sqlite:///{link}") as store:
        store.create_generation("after the backup", **GEN)

    restore(tmp_path / "backup.db", f"sqlite:///{link}", overwrite=True)

    assert link.is_symlink() and link.resolve() == real
    with Store(f"sqlite:///{real}") as store:
        assert [g.prompt for g in _rows(store)] == ["kept in the backup"]
        _assert_totals_match_rows(store)
    assert not any(p.name.startswith(".generations.db.") for p in tmp_path.iterdir())


def test_restore_refuses_a_database_opened_while_it_copied_the_backup(tmp_path: Path) -> None:
    # restore looked for connections before copying the backup (minutes for a large one) and not again: a
    # worker started meanwhile kept the old file open, wrote to it after the swap, and its rows were lost
    from musicstore.errors import InvalidInput
    from musicstore.maintenance.backup import backup, restore

    url = f"sqlite:///{tmp_path / 'generations.db'}"
    with Store(url, migrate=True) as store:
        store.create_generation("kept in the backup", **GEN)
    backup(url, tmp_path / "backup.db")
    opened: list[Store] = []

    def a_worker_starts(pages: int) -> None:
        store = Store(url)
        opened.append(store)
        store.create_generation("written by the worker", **GEN)

    try:
        with pytest.raises(InvalidInput, match="open in another process or in this one"):
            restore(tmp_path / "backup.db", url, overwrite=True, progress=a_worker_starts)
        assert sorted(g.prompt for g in _rows(opened[0])) == ["kept in the backup", "written by the worker"]
    finally:
        for store in opened:
            store.close()
    with Store(url) as store:
        assert len(_rows(store)) == 2
    assert not any(p.name.startswith(".generations.db.") for p in tmp_path.iterdir())


def test_more_claims_in_flight_than_the_processing_walk_reads_are_flagged(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the leases, workers and processing-by-priority figures come from at most 10,000 processing rows (any
    # of them past that): with more claims in flight they undercounted silently (musicstore_leases summed
    # to less than musicstore_generations{status="processing"}), where the queue's walk says when it is cut
    from prometheus_client.parser import text_string_to_metric_families

    from musicstore.metrics import metrics_text, reads

    monkeypatch.setattr(reads, "PROCESSING_LIMIT", 2)  # the walk's 10,000, made small
    with Store(db_url) as store:
        for i in range(3):
            store.create_generation(f"p{i}", **GEN)
        store.claim_next("w0")
        store.claim_next("w1")
        exact = read_metrics(store)
        assert (exact.leases_live, exact.processing_truncated) == (2, False)
        assert exact.as_dict()["processing_truncated"] is False
        store.claim_next("w2")
        cut = read_metrics(store)
        assert cut.by_status["processing"] == 3 and cut.leases_live == 2
        assert cut.processing_truncated is True and cut.as_dict()["processing_truncated"] is True
        text = metrics_text(store).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert [s.value for s in families["musicstore_processing_truncated"].samples] == [1.0]


def test_a_backup_over_an_earlier_one_is_not_read_through_its_stale_wal(tmp_path: Path) -> None:
    # backup(overwrite=True) put the new copy in place but left the -wal a killed reader of the earlier
    # backup had left beside it: opening the new backup replayed that -wal onto it, and it read as the
    # earlier backup plus the killed process's rows (integrity_check said ok), not as the live database
    import subprocess
    import sys

    from musicstore.errors import InvalidInput
    from musicstore.maintenance.backup import backup

    url, dest = f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "backup.db"
    with Store(url, migrate=True) as store:
        store.create_generation("in both backups", **GEN)
    backup(url, dest)
    inspect = (
        "import os\nfrom musicstore import Store\n"
        f"s = Store({f'sqlite:///{dest}'!r})\n"
        "for i in range(30): s.create_generation(f'inspect {i}', model_name='m', duration_seconds=1)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", inspect], check=False)
    assert Path(f"{dest}-wal").stat().st_size > 0
    with Store(url) as store:
        store.create_generation("only in the second backup", **GEN)

    backup(url, dest, overwrite=True)

    with Store(f"sqlite:///{dest}") as store:
        assert sorted(g.prompt for g in _rows(store)) == ["in both backups", "only in the second backup"]
        _assert_totals_match_rows(store)
        # a destination some connection has open is not replaced under it
        with pytest.raises(InvalidInput, match="open in another process or in this one"):
            backup(url, dest, overwrite=True)
        assert len(_rows(store)) == 2
    assert not any(p.name.startswith(".backup.db.") for p in tmp_path.iterdir())


def test_a_database_restored_onto_itself_is_left_as_it_was(tmp_path: Path) -> None:
    # the second look for connections (after the copy) saw restore's own read of the backup when the backup
    # was the database itself, and refused it as "open in this process"
    from musicstore.maintenance.backup import restore

    url = f"sqlite:///{tmp_path / 'live.db'}"
    with Store(url, migrate=True) as store:
        store.create_generation("kept", **GEN)
    assert restore(tmp_path / "live.db", url, overwrite=True).integrity == "ok"
    with Store(url) as store:
        assert [g.prompt for g in _rows(store)] == ["kept"]


_WRITER = """
import sys
from musicstore import Store
store = Store(sys.argv[1])
w = sys.argv[2]
print("ready", flush=True)
for i in range(100_000):
    store.create_generation(f"p{i % 11}", model_name="m" + w, duration_seconds=2, priority=i % 3 - 1,
                            owner_key=w if i % 2 else None)
    g = store.claim_next(w)
    if g is None:
        continue
    if i % 3 == 0:
        store.complete_generation(g.id, file_path=g.id + ".wav", file_size_bytes=10 + i,
                                  generation_time_seconds=1.5)
    elif i % 3 == 1:
        store.fail(g.id, "boom", retry=i % 2 == 0)
    else:
        store.cancel(g.id)
"""


def test_a_backup_taken_while_workers_write_restores_totals_equal_to_a_recount(tmp_path: Path) -> None:
    # the running totals (triggers) and the rows they count are copied in one snapshot: a restored backup's
    # metrics equal a recount of its rows, whatever the writers were doing when it was taken
    import subprocess
    import sys
    import time

    from musicstore.maintenance.backup import backup, restore

    url = f"sqlite:///{tmp_path / 'live.db'}"
    with Store(url, migrate=True) as store:
        _history(store)
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, f"w{k}"], stdout=subprocess.PIPE, text=True)
        for k in range(3)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        # until the writers have committed a dozen rows past the history's 12 (a fixed 1 s: a stall of the
        # writers that long left the snapshot with the history alone), up to 60 s; they write on meanwhile
        with Store(url) as live:
            deadline = time.monotonic() + 60
            while live.count_generations() < 24:
                assert time.monotonic() < deadline, "the writers wrote nothing in 60 s"
                time.sleep(0.05)
        backup(url, tmp_path / "backup.db", pages=1, progress=lambda pages: time.sleep(0.0002))
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    restore(tmp_path / "backup.db", f"sqlite:///{tmp_path / 'restored.db'}")
    with Store(f"sqlite:///{tmp_path / 'restored.db'}") as store:
        rows = _rows(store)
        assert len(rows) > 12
        _assert_totals_match_rows(store)
        levels = Counter(
            {(lv.owner_key, lv.priority): lv.pending for lv in store.queue_depth().levels if lv.pending}
        )
        pending = [g for g in rows if g.status.value == "pending"]
        assert levels == Counter((g.owner_key, g.priority) for g in pending)  # the owner lanes too
        claimed = 0
        while store.claim_next("after-restore") is not None:
            claimed += 1
        assert claimed == len(pending)


def test_restore_shows_typed_paths_with_escapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # backup's line showed a control character of a path as an escape (tests/test_cli_hunt_s22.py), restore's
    # "restored ... as ..." printed it as it was: a newline split the line, an ESC reached the terminal
    from musicstore.cli import main

    folder = tmp_path / "a\x1b[2Jb\nc"
    folder.mkdir()
    url = f"sqlite:///{tmp_path / 'live.db'}"
    Store(url, migrate=True).close()
    assert main(["backup", str(folder / "copy.db"), "-d", url]) == 0
    capsys.readouterr()
    assert main(["restore", str(folder / "copy.db"), "-d", f"sqlite:///{folder / 'restored.db'}"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and out.count("\n") == 1 and "\\x1b[2Jb\\nc" in out, out

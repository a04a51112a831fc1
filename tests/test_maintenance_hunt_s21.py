"""Hunt session 21: maintenance and schema life (backup, restore, retention, reconcile, migrations)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from musicstore import InvalidInput, Store, migrate
from musicstore.maintenance.backup import backup, restore
from musicstore.maintenance.reconcile import reconcile
from musicstore.maintenance.usage import storage_stats
from musicstore.migrate import shipped_migrations
from tests.test_reconcile import tree_snapshot
from tests.test_totals import assert_totals_are_a_recount, every_generation
from tests.test_upgrade_regressions import ROOT, _backend, empty_url  # noqa: F401


def _rollback_from(url: str, mid: str) -> None:
    """Roll back ``mid`` and every later migration (newest first), with yoyo."""
    from yoyo import read_migrations

    backend = _backend(url)
    try:
        with backend.lock():
            applied = backend.to_rollback(read_migrations(str(ROOT / "migrations")))
            backend.rollback_migrations(applied.filter(lambda m: m.id >= mid))
    finally:
        backend.connection.close()


def _fill(store: Store) -> None:
    """Rows of every kind: queue fields, owners and models that sort differently by byte and by locale,
    completed rows with renditions, a failed one, prompts."""
    for i in range(12):
        store.create_generation(
            f"prompt {i % 4} é 🎵 A-b_c{i}",
            model_name=["musicgen-small", "Musicgen-Large", "a_c", "a-c"][i % 4],
            duration_seconds=3 + i,
            priority=i % 3 - 1,
            owner_key=None if i % 2 else ["user-B", "user-a", "user_a", "Ü"][i % 4],
            idempotency_key=f"req-{i}",
            metadata={"i": i, "s": "ß\u00e9"},
        )
    for n in range(6):
        claimed = store.claim_next("gpu-1")
        assert claimed is not None
        if n % 3 == 2:
            store.fail(claimed.id, "oom")
            continue
        store.complete_generation(
            claimed.id, file_path=f"x/{claimed.id}.wav", file_size_bytes=100 + n, worker_id="gpu-1"
        )
        for profile, fmt in (("streaming", "mp3"), ("Preview", "opus")):
            settings: dict[str, Any] = {"format": fmt, "sample_rate": 48000, "channels": 2}
            if fmt == "mp3":
                settings |= {"bitrate_mode": "variable", "quality": 2}
            else:
                settings |= {"bitrate_kbps": 96}
            store.create_rendition(
                claimed.id,
                storage_key=f"r/{claimed.id}.{profile}.{fmt}",
                settings=settings,
                profile=profile,
                target_lufs=-14,
                ceiling_dbtp=-1,
                file_size_bytes=10 + n,
                duration_seconds=4,
                loudness_lufs=-14,
                true_peak_dbtp=-1.5,
                loudness_status="normalized",
                checksum="0" * 64,
            )
    for p in ("prompt 0 é 🎵 A-b_c0", "zz", "ZZ"):
        store.track_prompt_usage(p)


def _snapshot(store: Store) -> Any:
    gens = sorted(every_generation(store), key=lambda g: g.id)
    rends = []
    for g in gens:
        rends += [dataclasses.asdict(r) for r in store.list_renditions(g.id)]
    stats = dataclasses.asdict(storage_stats(store))
    return gens, rends, store.get_most_used_prompts(100), assert_totals_are_a_recount(store), stats


def _lost_by_rollback(before: Any, mid: str) -> Any:
    """``before`` less what the rollback of ``mid`` (and those after it) documents as lost
    (docs/migrations.md): 0009's progress, 0008's queue fields, 0007's renditions."""
    gens, rends, prompts, totals, stats = before
    number = mid[:4]
    if number <= "0009":
        queue = {"priority": 0, "run_after": None, "owner_key": None, "idempotency_key": None}
        gens = [
            dataclasses.replace(
                g, progress=None, stage=None, progress_at=None, **(queue if number <= "0008" else {})
            )
            for g in gens
        ]
    if number <= "0007":
        rends = []
    return gens, rends, prompts, totals, stats


def test_each_migration_rolls_back_and_applies_again_keeping_values(empty_url: str) -> None:  # noqa: F811
    """Each migration (newest first, down to 0003), rolled back with yoyo (with those after it) on a database
    holding rows of every kind and migrated up again, leaves every row, rendition, prompt and total as it
    was, less what docs/migrations.md says its rollback loses."""
    url = empty_url
    migrate(url)
    with Store(url) as store:
        _fill(store)
        before = _snapshot(store)
    for mid in reversed(shipped_migrations()):
        if mid[:4] <= "0002":
            break
        _rollback_from(url, mid)
        assert migrate(url) == [m for m in shipped_migrations() if m >= mid]
        with Store(url) as store:
            after = _snapshot(store)
        expected = _lost_by_rollback(before, mid)
        assert after[:3] == expected[:3], mid
        if mid[:4] > "0007":  # the renditions' totals go with them
            assert after[3:] == expected[3:], mid


def _root_with_an_orphan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """An output root holding one orphan file, and an empty working directory made current."""
    root = tmp_path / "root"
    orphan = root / "2026/01/01" / f"{uuid.uuid4()}.wav"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"o")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return root, orphan, work


@pytest.mark.parametrize("quarantine", ["", 5, b"/tmp/quarantine", "x\x00y"])
def test_a_quarantine_that_is_no_folder_path_is_refused_before_any_work(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quarantine: Any
) -> None:
    """``quarantine=""`` (an unset variable) is no folder: ``Path("")`` is the working directory, and a repair
    moved every orphan there (into the folder above the root, say); a value of another type raised
    TypeError. Both are InvalidInput now, before anything is touched, repair or not."""
    root, orphan, work = _root_with_an_orphan(tmp_path, monkeypatch)
    for repair in (True, False):
        with pytest.raises(InvalidInput, match="quarantine"):
            reconcile(store, root, repair=repair, quarantine=quarantine)
    assert tree_snapshot(root) == {orphan.relative_to(root).as_posix(): 1}
    assert not os.listdir(work)


def test_restore_refuses_a_database_this_very_process_holds_open(sqlite_url: str, tmp_path: Path) -> None:
    """restore() detected only other processes (their lock on the -shm byte: a process never conflicts with
    its own locks), so with a Store still open in the calling process it put the backup in place under it:
    that store went on writing to the old, unlinked file, and what it wrote then was lost without a word.
    Now InvalidInput, nothing replaced; once the store is closed the restore goes ahead."""
    copy = tmp_path / "copy.db"
    with Store(sqlite_url) as store:
        store.create_generation("in the backup", model_name="m", duration_seconds=1.0)
        backup(sqlite_url, copy)
        store.create_generation("after the backup", model_name="m", duration_seconds=1.0)
        with pytest.raises(InvalidInput, match="is open"):
            restore(copy, sqlite_url, overwrite=True)
        store.create_generation("written after the refusal", model_name="m", duration_seconds=1.0)
    with Store(sqlite_url) as store:
        assert store.count_generations() == 3
    restore(copy, sqlite_url, overwrite=True)
    with Store(sqlite_url) as store:
        assert [g.prompt for g in store.list_generations().items] == ["in the backup"]


def test_a_quarantine_given_as_a_url_is_its_folder_or_refused(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output root may be a ``file:///absolute/path`` URL; a quarantine given so was taken for the
    relative folder ``file:/absolute/path`` under the working directory, where a repair moved every orphan.
    It is that folder now, as for the root; another scheme (``s3://``) or a ``file://`` URL with a host is
    InvalidInput before any work, its credentials not echoed."""
    root, orphan, work = _root_with_an_orphan(tmp_path, monkeypatch)
    for url in ("s3://bucket/quarantine", "file://user:s3cret@host/srv/quarantine"):
        with pytest.raises(InvalidInput) as refused:
            reconcile(store, root, repair=True, quarantine=url)  # type: ignore[arg-type]
        assert "s3cret" not in str(refused.value)
    assert orphan.exists()
    quarantine = tmp_path / "quarantine"
    report = reconcile(store, root, repair=True, quarantine=quarantine.as_uri())  # type: ignore[arg-type]
    assert [o.action for o in report.orphans] == ["quarantined"] and report.quarantine == str(quarantine)
    assert (quarantine / orphan.relative_to(root)).read_bytes() == b"o"
    assert not os.listdir(work)


@pytest.mark.parametrize("statuses", [5, 2.5, object()], ids=["int", "float", "object"])
def test_cleanup_statuses_that_are_no_collection_are_invalid_input(
    store: Any, tmp_path: Path, statuses: Any
) -> None:
    """``cleanup(statuses=5)`` raised ``TypeError: 'int' object is not iterable``; like every other bad
    argument it is InvalidInput before any work now. A single status (a str or a Status) still counts."""
    from musicstore import Status
    from musicstore.maintenance.retention import cleanup

    with pytest.raises(InvalidInput, match="statuses"):
        cleanup(store, tmp_path, statuses=statuses)
    assert cleanup(store, tmp_path, statuses=Status.FAILED).statuses == ["failed"]
    assert cleanup(store, tmp_path, statuses="failed").statuses == ["failed"]


@pytest.mark.parametrize("bad", ["", "copy\x00.db"], ids=["empty", "nul"])
def test_backup_and_restore_refuse_a_file_argument_that_names_no_file(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """``backup(url, "")`` took ``Path("")``, the working directory (and said it "exists"); a NUL in the
    destination raised ValueError (embedded null byte). Both are InvalidInput naming the argument, before any
    work, for restore's backup_path too."""
    monkeypatch.chdir(tmp_path)
    made = backup(sqlite_url, tmp_path / "copy.db")
    before = sorted(os.listdir(tmp_path))
    for overwrite in (False, True):
        with pytest.raises(InvalidInput, match="destination"):
            backup(sqlite_url, bad, overwrite=overwrite)
        with pytest.raises(InvalidInput, match="backup_path"):
            restore(bad, f"sqlite:///{tmp_path / 'restored.db'}", overwrite=overwrite)
    assert sorted(os.listdir(tmp_path)) == before and Path(made.destination).is_file()


@pytest.mark.parametrize(
    "bad", [5, None, b"/tmp/x.db", "", "x\x00.db"], ids=["int", "None", "bytes", "empty", "nul"]
)
def test_integrity_and_in_use_refuse_what_names_no_file(bad: Any) -> None:
    """``integrity(5)`` raised TypeError and ``in_use(5)`` answered False (it looked for a file named
    ``5-shm``): both public, both InvalidInput now, as backup's and restore's file arguments."""
    from musicstore.maintenance.backup import in_use, integrity

    with pytest.raises(InvalidInput):
        integrity(bad)
    with pytest.raises(InvalidInput):
        in_use(bad)

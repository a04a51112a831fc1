"""Fixes of session 25 in records and maintenance (copy_files, copy_store, cleanup, reconcile, backup): each
test failed before its fix, on both database backends (and on a folder and a bucket where files are involved).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from musicstore import Generation, InvalidInput, Store
from musicstore.filestore import FileStore, open_filestore
from musicstore.maintenance.relocate import copy_files
from musicstore.maintenance.retention import cleanup
from musicstore.maintenance.transfer import copy_store
from musicstore.ops import generations_after, prompts_after
from musicstore.ops.queue import get_owner_limits
from musicstore.ops.storage import get_storage, record_storage
from musicstore.ops.transfer import renditions_after
from tests.conftest import FakeClock, new_job
from tests.test_maintenance_s3 import RENDITION


def completed_at(store: Store, files: FileStore, clock: FakeClock, key: str, data: bytes) -> Generation:
    """A completed generation whose master is ``data`` at ``key`` in ``files``, recorded there."""
    clock.advance(1)
    job = new_job(store)
    claimed = store.claim_next("gpu-0")
    assert claimed is not None and claimed.id == job.id
    files.put(key, data)
    done: Generation = store.complete_generation(job.id, file_path=key, file_size_bytes=len(data))
    checksum = hashlib.sha256(data).hexdigest()
    store.run(record_storage, job.id, storage_url=files.url, key=key, checksum=checksum)
    return done


def _outcome(report: Any) -> Any:
    return (
        [(d.id, d.file_action.replace("would_delete", "deleted"), d.peaks_deleted) for d in report.deleted],
        report.files_deleted,
        report.peaks_files_deleted,
        report.bytes_freed,
    )


def _copied(report: Any) -> Any:
    return (
        report.rows_updated,
        report.objects_copied,
        report.objects_present,
        report.bytes_copied,
        report.peaks_copied,
        report.skipped_count,
        [(s.id, s.reason) for s in report.skipped],
    )


def test_a_dry_copy_refuses_a_source_of_the_right_size_and_other_bytes_as_the_run_does(
    store: Store, where: FileStore, clock: FakeClock, tmp_path: Path
) -> None:
    """A master replaced by other bytes of the same size: the run streams it against the row's SHA-256 and
    skips the row (nothing written); the dry run read no byte and said it would copy it (1 row, 1 object).
    The dry run now reads the source as the run does."""
    good = completed_at(store, where, clock, "2026/01/01/good.wav", b"RIFF" + b"\1" * 40)
    bad = completed_at(store, where, clock, "2026/01/01/bad.wav", b"RIFF" + b"\2" * 40)
    where.delete("2026/01/01/bad.wav")
    where.put("2026/01/01/bad.wav", b"RIFF" + b"\3" * 40)  # same size, other bytes
    target = open_filestore((tmp_path / "moved").as_uri())
    dry = copy_files(store, target, dry_run=True)
    real = copy_files(store, target)
    assert _copied(real)[:6] == (1, 1, 0, 44, 0, 1)
    assert real.skipped[0].id == bad.id and "ChecksumMismatch" in real.skipped[0].reason
    assert _copied(dry) == _copied(real)  # it said (2, 2, 0, 88, 0, 0, [])
    assert sorted(o.key for o in target.list()) == ["2026/01/01/good.wav"]
    assert store.run(get_storage, good.id).storage_url == target.url
    assert store.run(get_storage, bad.id).storage_url == where.url


_second = itertools.count()


@pytest.fixture(
    params=[("sqlite", "sqlite"), ("sqlite", "postgres"), ("postgres", "sqlite"), ("postgres", "postgres")],
    ids="-to-".join,
)
def source_and_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """A fresh migrated source and target store, on each pair of backends."""
    made: list[str] = []

    def one(kind: str, name: str) -> str:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / name}.db"
            Store(url, migrate=True).close()
            return url
        if "postgres" not in made:
            made.append("postgres")
            return str(request.getfixturevalue("postgres_url"))
        server = request.getfixturevalue("musicstore_postgres_server")
        database = f"records_s25_{name}_{next(_second)}"
        server.admin(f"CREATE DATABASE {database} TEMPLATE {server.template}")
        request.addfinalizer(lambda: server.admin(f"DROP DATABASE {database} WITH (FORCE)"))
        return str(server.url(database))

    source_kind, target_kind = request.param
    clock = FakeClock()
    with (
        Store(one(source_kind, "source"), clock=clock) as source,
        Store(one(target_kind, "target"), clock=clock) as target,
    ):
        yield source, target


def everything(store: Store) -> Any:
    """Every row of ``store`` as read back (prompts, generations, renditions, owner limits)."""
    return (
        store.run(prompts_after, 0, 10_000),
        store.run(generations_after, "", 10_000),
        store.run(renditions_after, "", 10_000),
        store.run(get_owner_limits),
        store.get_database_stats(),
    )


def rendered(store: Store, gid: str, key: str, **settings: Any) -> None:
    """A rendition of completed ``gid`` at ``key`` (its settings: RENDITION's, updated by ``settings``)."""
    spec = {**RENDITION, "settings": {**RENDITION["settings"], **settings}}
    store.create_rendition(gid, storage_key=key, file_size_bytes=4, checksum="cd" * 32, **spec)


def source_rows(source: Store, n: int) -> list[Generation]:
    """``n`` completed generations with idempotency keys ``click-<i>``, a rendition each, an owner limit."""
    made = []
    for i in range(n):
        job = new_job(source, f"prompt {i}", owner_key="user", idempotency_key=f"click-{i}")
        assert source.claim_next("w") is not None
        made.append(source.complete_generation(job.id, file_path=f"a/{job.id}.wav", file_size_bytes=8))
        rendered(source, job.id, f"a/{job.id}.streaming.mp3")
    source.set_owner_limit("user", 2)
    return made


def test_copy_store_refuses_a_target_holding_a_source_idempotency_key_before_writing_anything(
    source_and_target: tuple[Store, Store],
) -> None:
    """The target holds a generation of its own with the idempotency key of the source's fourth: the copy
    committed every prompt and the first pages of generations (batch=2), then stopped with a DatabaseError
    (the unique index), the target half-written. Now it is InvalidInput naming both rows and the key, the
    target as it was; once the clash is gone, the copy goes through."""
    source, target = source_and_target
    made = source_rows(source, 5)
    own = new_job(target, "the target's own", idempotency_key="click-3")
    before = everything(target)
    clash = rf"generation '{made[3].id}': idempotency_key 'click-3' .*{own.id}"
    with pytest.raises(InvalidInput, match=clash):
        copy_store(source, target, batch=2)
    assert everything(target) == before
    target.delete_generation(own.id)
    assert copy_store(source, target, batch=2) == 5
    assert everything(target)[1:4] == everything(source)[1:4]


@pytest.mark.parametrize("clash", ["storage_key", "request"])
def test_copy_store_refuses_a_target_holding_a_rendition_of_another_id_at_a_unique_key(
    source_and_target: tuple[Store, Store], clash: str
) -> None:
    """A rendition the target holds under another id at a copied rendition's storage key (another
    generation's), or for the same generation, format and settings (rendered in the target after an
    earlier copy): every generation was in the target when the rendition's unique key stopped the copy.
    Now it is InvalidInput before anything is written."""
    source, target = source_and_target
    made = source_rows(source, 3)
    if clash == "storage_key":
        job = new_job(target, "the target's own")
        assert target.claim_next("w") is not None
        target.complete_generation(job.id, file_path=f"b/{job.id}.wav", file_size_bytes=8)
        rendered(target, job.id, f"a/{made[1].id}.streaming.mp3", bitrate_kbps=128)
    else:
        assert copy_store(source, target) == 3
        rendered(source, made[1].id, "a/source.mp3", bitrate_kbps=320)
        rendered(target, made[1].id, "a/target.mp3", bitrate_kbps=320)
    before = everything(target)
    source.set_owner_limit("user", 7)
    with pytest.raises(InvalidInput, match=r"rendition '[^']+': its .* held in the target by rendition"):
        copy_store(source, target, batch=1)
    assert everything(target) == before


def test_a_dry_cleanup_over_pages_deletes_the_peaks_a_kin_master_of_an_earlier_page_kept_as_the_run_does(
    store: Store, where: FileStore, clock: FakeClock
) -> None:
    """album/t.flac (its file gone) and album/t.wav share the peaks named after their stem; three rows
    record t.wav. Page 1 (batch=2) deletes t.flac's row and the first t.wav row (kept_shared); page 2 the
    other two, and t.wav with them: the run deletes the peaks there (t.flac's row is gone). In a folder,
    the dry run still saw t.flac's row on page 2 and said the peaks stay (a folder's listing of the peaks
    beside page 1's masters gave them to t.wav alone, so t.flac's row was not carried as one that would
    be gone)."""
    flac = completed_at(store, where, clock, "album/t.flac", b"fLaC" + b"\1" * 20)
    where.delete("album/t.flac")
    first, second, third = (completed_at(store, where, clock, "album/t.wav", b"RIFF" + b"\2" * 10)
                            for _ in range(3))  # fmt: skip
    where.put("album/t.peaks.256.8.json", b'{"version": 2}')

    dry = cleanup(store, where, statuses=["completed"], batch=2)
    real = cleanup(store, where, statuses=["completed"], batch=2, dry_run=False)
    expected = (
        [
            (flac.id, "missing", 0),
            (first.id, "kept_shared", 0),
            (second.id, "deleted", 1),
            (third.id, "missing", 0),
        ],
        2,
        1,
        14 + 14,
    )
    assert _outcome(real) == expected
    assert _outcome(dry) == expected  # it said ([..., (second.id, "deleted", 0), ...], 1, 0, 14)
    assert sorted(o.key for o in where.list()) == []

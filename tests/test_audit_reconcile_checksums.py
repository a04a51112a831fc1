"""``reconcile(..., verify_checksums=True)`` on a local root, as on a bucket: a master or a rendition whose
bytes no longer hash to the SHA-256 its row records (same size: a bit flipped on disk) is reported as
``checksum_mismatch`` and repaired as a dangling row or rendition is; without the flag a local root
compares sizes, as before. Both database backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Status, Store
from musicstore.maintenance.reconcile import reconcile
from musicstore.rendering import render_generation
from tests.test_rendition_store import exported


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_master_or_rendition_is_found_when_asked(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    damaged = exported(store, root)
    kept = exported(store, root)
    mp3, flac = render_generation(store, kept.id, root=root, formats=["mp3", "flac"])
    _flip(root / str(damaged.file_path), 1000)
    _flip(root / flac.storage_key, 2000)

    assert reconcile(store, root).consistent  # sizes agree: a plain reconcile reads no audio
    report = reconcile(store, root, verify_checksums=True)
    assert not report.consistent
    assert [(d.id, d.problem) for d in report.dangling] == [(damaged.id, "checksum_mismatch")]
    assert [(d.id, d.problem) for d in report.dangling_renditions] == [(flac.id, "checksum_mismatch")]
    assert report.checksums_verified == 2 + 2 - 0  # two masters and two renditions read

    repaired = reconcile(store, root, repair=True, delete_orphans=True, verify_checksums=True)
    assert [d.action for d in repaired.dangling] == ["marked_failed"]
    assert [d.action for d in repaired.dangling_renditions] == ["deleted_row"]
    failed = store.get_generation(damaged.id)
    assert failed is not None and failed.status is Status.FAILED and "checksum" in str(failed.error_message)
    assert [r.id for r in store.list_renditions(kept.id)] == [mp3.id]
    assert not (root / flac.storage_key).exists()  # its row gone, the damaged file was an orphan: deleted
    assert reconcile(store, root, verify_checksums=True).consistent


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(at=st.integers(0, 10**6), which=st.sampled_from(["master", "peaks"]))
def test_any_flipped_byte_is_found(
    store: Store, tmp_path_factory: pytest.TempPathFactory, at: int, which: str
) -> None:
    root = tmp_path_factory.mktemp("flip") / "audio"
    done = exported(store, root)
    target = root / (str(done.file_path) if which == "master" else done.metadata["peaks"]["key"])
    _flip(target, at)
    report = reconcile(store, root, verify_checksums=True)
    if which == "master":
        assert [(d.id, d.problem) for d in report.dangling] == [(done.id, "checksum_mismatch")]
    else:  # a peaks file is read by every local reconcile
        assert [(d.id, d.problem) for d in report.dangling_peaks] == [(done.id, "checksum_mismatch")]
        assert reconcile(store, root).dangling_peaks_count == 1
    store.delete_generation(done.id)

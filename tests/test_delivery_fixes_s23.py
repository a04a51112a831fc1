"""Delivery fixes (session 23): reconcile racing another on a bucket's uploads, custom-path peaks of deleted
generations, render_generation after copy-files moved a generation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from musicstore import Store
from musicstore.filestore import FileStore, Upload
from musicstore.maintenance.reconcile import ReconcileReport, reconcile


def _another_reconcile_after_the_listing(
    monkeypatch: pytest.MonkeyPatch, store: Store, files: FileStore
) -> list[ReconcileReport]:
    """Run a second ``reconcile --repair`` once, right after this one listed the uploads and before it
    aborts them: the two raced, and the other aborted first."""
    kind = type(files)
    uploads = kind.uploads
    other: list[ReconcileReport] = []

    def listed_then_the_other(self: Any) -> Iterator[Upload]:
        yield from uploads(self)
        if not other:
            other.append(ReconcileReport(files.url, repair=True, quarantine=None))  # no recursion
            other[0] = reconcile(store, files.url, repair=True, delete_orphans=True, stale_after_seconds=0)

    monkeypatch.setattr(kind, "uploads", listed_then_the_other)
    return other


@pytest.fixture
def abandoned(musicstore_s3_server: Any, musicstore_s3_url: str) -> str:
    """A multipart upload begun under the test prefix and never completed; its key."""
    client = musicstore_s3_server.client()
    bucket, _, prefix = musicstore_s3_url.removeprefix("s3://").partition("/")
    client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}2026/01/02/abandoned.wav")
    return "2026/01/02/abandoned.wav"


def test_a_reconcile_racing_another_to_abort_an_upload_counts_it_already_repaired(
    store: Store, objects: FileStore, abandoned: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two `reconcile --repair --orphans delete` on a bucket at once, one stale multipart upload: the one that
    # came second aborted it again (S3 and SeaweedFS answer that as done), reported it `aborted` and exited
    # 4, as if it had found and repaired a disagreement the other had already repaired
    other = _another_reconcile_after_the_listing(monkeypatch, store, objects)
    report = reconcile(store, objects, repair=True, delete_orphans=True, stale_after_seconds=0)
    assert [(u.key, u.action) for u in other[0].abandoned_uploads] == [(abandoned, "aborted")]
    assert not other[0].consistent
    assert report.errors == []
    assert [(u.key, u.action) for u in report.abandoned_uploads] == [(abandoned, "already_repaired")]
    assert report.already_repaired == 1 and report.consistent
    monkeypatch.undo()
    assert list(objects.uploads()) == []


def test_the_cli_exits_0_when_another_reconcile_aborted_the_upload_it_found(
    store: Store,
    *,
    db_url: str,
    objects: FileStore,
    abandoned: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from musicstore.cli import main

    other = _another_reconcile_after_the_listing(monkeypatch, store, objects)
    code = main(
        ["reconcile", "--database", db_url, "--output-root", objects.url, "--repair", "--orphans", "delete",
         "--stale-after", "0s"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert other and not other[0].consistent, (code, out, err)
    assert code == 0, out
    assert "already_repaired" in out and abandoned in out

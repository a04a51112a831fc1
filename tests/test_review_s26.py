"""Review of session 26's changes: what the review found and fixed."""

from __future__ import annotations

import sqlite3

import pytest

from musicstore import Store
from musicstore.errors import MigrationError, NewerSchemaWarning
from musicstore.metrics.reads import read_metrics
from musicstore.urls import resolve
from tests.test_migcli_hunt_s26 import _a_later_status


@pytest.mark.parametrize("rows", [True, False])
def test_read_metrics_of_a_status_a_later_musicstore_wrote_is_a_migration_error(
    sqlite_url: str, rows: bool
) -> None:
    """docs/migrations.md: a read that meets a row in a status this version does not know raises
    MigrationError. read_metrics (/metrics, the dashboard's overview) raised a bare KeyError 'paused' from its
    totals by status (b237632 made the row readers and Stats.from_totals say it, not this one)."""
    _a_later_status(sqlite_url)
    with (
        pytest.warns(NewerSchemaWarning),
        Store(sqlite_url) as store,
        pytest.raises(MigrationError, match="'paused', which this musicstore"),
    ):
        read_metrics(store, rows=rows)


def test_storage_stats_of_a_status_a_later_musicstore_wrote_is_a_migration_error(sqlite_url: str) -> None:
    """``storage_stats`` (``musicstore stats --storage``) took an unknown status in as a key of its own, where
    every other read says MigrationError (docs/migrations.md)."""
    from musicstore.maintenance.usage import storage_stats_op

    _a_later_status(sqlite_url)
    path = resolve(sqlite_url).path
    assert path is not None
    with sqlite3.connect(path) as conn:  # the later version's totals count its status too
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("INSERT INTO generation_totals (status, generations) VALUES ('paused', 1)")
    with (
        pytest.warns(NewerSchemaWarning),
        Store(sqlite_url) as store,
        pytest.raises(MigrationError, match="'paused', which this musicstore"),
    ):
        store.run(storage_stats_op)

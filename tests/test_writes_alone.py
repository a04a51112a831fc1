"""Writes whose first statement may commit by itself (``Operation.alone``: claim_next, heartbeat, cancel,
fail): on PostgreSQL that statement runs in autocommit, BEGIN going out only before a second statement; the
answers, errors and rows are those of a write in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from musicstore import LeaseLost, NotFound, Status, Store, ops
from musicstore.backends import postgres

from .conftest import new_job

ALONE = {"claim_next", "heartbeat", "cancel", "fail"}


def test_which_writes_may_commit_their_first_statement_alone() -> None:
    """Each of these is its first statement, or that statement changed nothing (the claim's fallback, fail's
    second statement after a retry that matched no row); no other write is marked."""
    marked = {
        name
        for name in dir(ops)
        if isinstance(getattr(ops, name), ops.Operation) and getattr(ops, name).alone
    }
    assert marked == ALONE
    assert all(getattr(ops, name).writes for name in marked)


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every BEGIN and COMMIT the PostgreSQL connections send (``postgres._command``), in order."""
    sent: list[str] = []
    command = postgres._command

    def counted(conn: Any, text: postgres.Command) -> None:
        sent.append(str(text))
        command(conn, text)

    monkeypatch.setattr(postgres, "_command", counted)
    yield sent


def test_a_claim_and_a_heartbeat_send_no_begin_or_commit(postgres_url: str, commands: list[str]) -> None:
    with Store(postgres_url) as store:
        job = new_job(store)
        commands.clear()
        claimed = store.claim_next("w1")
        assert claimed is not None and claimed.id == job.id and claimed.status is Status.PROCESSING
        assert commands == []
        store.heartbeat(job.id, "w1", lease_seconds=60)
        assert commands == []
        assert store.claim_next("w1") is None  # nothing left: still one statement
        assert commands == []
        row = store.get_generation(job.id)
        assert row is not None and row.status is Status.PROCESSING and row.worker_id == "w1"
        with pytest.raises(LeaseLost):
            store.heartbeat(job.id, "w2")  # matched no row: the explanation's reads in a transaction
        assert commands == ["BEGIN"]  # then rolled back (psycopg's ROLLBACK)
        commands.clear()
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="w1")
        assert commands == ["BEGIN", "COMMIT"]  # not alone: its statements commit together


def test_fail_without_a_retry_sends_begin_before_its_second_statement(
    postgres_url: str, commands: list[str]
) -> None:
    with Store(postgres_url) as store:
        first, second = new_job(store), new_job(store, "ambient drone")
        for _ in range(2):
            store.claim_next("w")
        commands.clear()
        assert store.fail(first.id, "retried", max_attempts=3) is Status.PENDING  # its first statement
        assert commands == []
        assert store.fail(second.id, "final", retry=False) is Status.FAILED  # no retry: one statement
        assert commands == []
        store.claim_next("w")
        commands.clear()
        assert store.fail(first.id, "last", max_attempts=1) is Status.FAILED  # the retry matched no row
        assert commands == ["BEGIN", "COMMIT"]
        rows = {g.id: g for g in (store.get_generation(first.id), store.get_generation(second.id)) if g}
        assert rows[first.id].status is Status.FAILED and rows[first.id].error_message == "last"
        assert rows[second.id].status is Status.FAILED and rows[second.id].error_message == "final"
        third = new_job(store, "city pop")
        commands.clear()
        store.cancel(third.id)
        assert commands == []
        cancelled = store.get_generation(third.id)
        assert cancelled is not None and cancelled.status is Status.CANCELLED
        with pytest.raises(NotFound):
            store.cancel("0190a0b0-0000-7000-8000-000000000000")
        assert commands == ["BEGIN"]

"""Regressions found by a hunt over the queue (session 21), on both backends: what ``musicstore cancel``
prints of a worker id cannot break its line or drive the terminal."""

from __future__ import annotations

import pytest

from musicstore import Store
from musicstore.cli import main
from tests.conftest import new_job


def test_cancel_prints_a_worker_id_with_control_characters_escaped(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = "gpu-0\x1b[2J\nmusicstore: all good\\n"  # a worker id is any text without NUL
    with Store(db_url) as store:
        job = new_job(store)
        assert store.claim_next(worker) is not None
    assert main(["cancel", job.id, "--database", db_url]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"cancelled {job.id} (was processing by worker gpu-0\\x1b[2J\\nmusicstore: all good\\\\n: it "
        "stops at its next progress report or heartbeat)\n"
    )

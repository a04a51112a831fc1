"""``musicstore queue`` and ``musicstore replay`` through the real entry point (``python -m musicstore``)."""

from __future__ import annotations

import json

from musicstore import Status, Store
from musicstore.cli import EXIT_NOT_FOUND
from musicstore.testing import FakeClock
from tests.test_cli import one_line_error, run

MISSING = "01a20180-5e48-7dc6-afbf-cdf54fb09fcb"


def test_queue_shows_depth_by_priority_and_owner_key(sqlite_url: str) -> None:
    clock = FakeClock()
    with Store(sqlite_url, clock=clock) as store:
        for i in range(3):
            store.create_generation(f"p{i}", model_name="m", duration_seconds=1, owner_key="user-42")
        store.create_generation("vip", model_name="m", duration_seconds=1, owner_key="user-7", priority=10)
        store.create_generation("system", model_name="m", duration_seconds=1)
        store.set_owner_limit("user-42", 2)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None and claimed.owner_key == "user-7"
    result = run("queue", "--database", sqlite_url, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["pending"] == 4 and figures["oldest_pending_age_seconds"] >= 0
    assert figures["owner_limits"] == {"user-42": 2}
    assert figures["running"] == [{"owner_key": "user-7", "running": 1}]
    levels = {(lv["priority"], lv["owner_key"]): lv["pending"] for lv in figures["by_priority_and_owner"]}
    assert levels == {(0, None): 1, (0, "user-42"): 3}
    table = run("queue", "--database", sqlite_url)
    assert table.returncode == 0 and table.stdout.startswith("pending 4, processing 1, oldest pending waited")
    assert "(none)" in table.stdout and "user-42" in table.stdout


def test_replay_one_all_and_errors(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        ids = []
        for i in range(3):
            store.create_generation(f"doomed {i}", model_name="m", duration_seconds=1)
            job = store.claim_next("w")
            assert job is not None
            store.fail(job.id, "out of memory", retry=False)
            ids.append(job.id)
    one = run("replay", ids[0], "--database", sqlite_url, "--json")
    assert one.returncode == 0 and json.loads(one.stdout) == {"replayed": [ids[0]]}
    again = run("replay", ids[0], "--database", sqlite_url)
    assert again.returncode == 1
    one_line_error(again, ids[0], "pending")
    missing = run("replay", MISSING, "--database", sqlite_url)
    assert missing.returncode == EXIT_NOT_FOUND
    one_line_error(missing, MISSING)
    for args in ([], [ids[1], "--all"]):
        usage = run("replay", *args, "--database", sqlite_url)
        assert usage.returncode == 2 and "--all" in usage.stderr
    every = run("replay", "--all", "--database", sqlite_url)
    assert every.returncode == 0 and every.stdout.startswith("replayed 2 dead letters")
    with Store(sqlite_url) as store:
        assert all(store.get_generation(gid).status is Status.PENDING for gid in ids)  # type: ignore[union-attr]
        assert store.list_dead_letters().items == []

"""Regressions found by a hunt over the queue (session 21), on both backends: what ``musicstore cancel``
prints of a worker id cannot break its line or drive the terminal; an idempotency key's retry whose metadata
has a bool where the first request had a number (or the reverse) is a conflict."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicstore import AsyncStore, IdempotencyConflict, Store
from musicstore.cli import main
from musicstore.errors import InvalidInput
from musicstore.ops import creation
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


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ({"explicit": True}, {"explicit": 1}),
        ({"explicit": False}, {"explicit": 0}),
        ({"seed": 1}, {"seed": True}),
        ({"tags": [0, 1]}, {"tags": [False, True]}),
        ({"mix": {"loop": True}}, {"mix": {"loop": 1.0}}),
    ],
)
def test_an_idempotency_key_with_a_bool_where_a_number_was_asked_is_a_conflict(
    store: Store, first: dict[str, object], again: dict[str, object]
) -> None:
    """The store keeps metadata as the JSON it was given (``true`` reads back ``True``, ``1`` reads back
    ``1``): a retry asking ``1`` where ``true`` was asked is another request, which Python's ``True == 1``
    let through, returning a generation whose metadata is not what the retry asked."""
    earlier = new_job(store, "a jingle", idempotency_key="user-7:click-1", metadata=first)
    with pytest.raises(IdempotencyConflict, match="metadata") as raised:
        new_job(store, "a jingle", idempotency_key="user-7:click-1", metadata=again)
    assert raised.value.existing_id == earlier.id and store.count_generations() == 1
    assert new_job(store, "a jingle", idempotency_key="user-7:click-1", metadata=first).id == earlier.id
    same_number = {key: 1 if value == 1.0 and type(value) is float else value for key, value in first.items()}
    assert new_job(store, "a jingle", idempotency_key="user-7:click-1", metadata=same_number).id == earlier.id


def test_a_completed_generation_agrees_with_a_retry_only_on_json_equal_metadata(store: Store) -> None:
    """The retry after the job completed compares the keys it asks with the completed row's: ``1`` is not
    ``true`` there either; a number equals the same number, int or float."""
    earlier = new_job(store, "a jingle", idempotency_key="k", metadata={"explicit": True, "bpm": 90})
    assert store.claim_next("gpu-0") is not None
    store.complete_generation(earlier.id, file_path="a.wav", file_size_bytes=1, metadata={"peak": 0.5})
    with pytest.raises(IdempotencyConflict):
        new_job(store, "a jingle", idempotency_key="k", metadata={"explicit": 1, "bpm": 90})
    again = new_job(store, "a jingle", idempotency_key="k", metadata={"explicit": True, "bpm": 90.0})
    assert again.id == earlier.id and again.is_completed


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


def _bools_as_ints(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict):
        return {key: _bools_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_bools_as_ints(item) for item in value]
    return value


@given(_JSON)
def test_metadata_agrees_with_its_json_read_back_and_not_with_its_bools_as_numbers(value: Any) -> None:
    assert creation._same_json(value, json.loads(json.dumps(value)))
    changed = _bools_as_ints(value)
    assert creation._same_json(value, changed) == (json.dumps(changed) == json.dumps(value))


def test_a_worker_given_the_default_lease_and_another_in_claim_options_is_refused(sqlite_url: str) -> None:
    """``lease_seconds=300`` given explicitly (the default's value) beside claim_options' 60 is two leases: it
    used to be taken for no lease given, and the worker silently used 60."""
    from musicstore.ops import DEFAULT_LEASE_SECONDS
    from musicstore.worker import AsyncWorker, Worker

    with Store(sqlite_url) as store:
        with pytest.raises(InvalidInput, match="two leases"):
            Worker(
                store,
                "gpu-0",
                lambda job: None,
                lease_seconds=DEFAULT_LEASE_SECONDS,
                claim_options={"lease_seconds": 60},
            )
        assert Worker(store, "gpu-0", lambda job: None).lease_seconds == DEFAULT_LEASE_SECONDS
        given = Worker(store, "gpu-0", lambda job: None, claim_options={"lease_seconds": 60})
        assert given.lease_seconds == 60

    async def handler(job: object) -> None:
        return None

    with pytest.raises(InvalidInput, match="two leases"):
        AsyncWorker(
            AsyncStore(sqlite_url),
            "gpu-0",
            handler,
            lease_seconds=DEFAULT_LEASE_SECONDS,
            claim_options={"lease_seconds": 60},
        )


def test_lease_lost_says_what_became_of_the_job(db_url: str) -> None:
    """LeaseLost names the cause the row's status shows: requeued, claimed by another worker, completed
    (it gave "cancelled, or its lease expired and it was requeued" whatever the status)."""
    from musicstore import LeaseLost
    from musicstore.testing import FakeClock

    clock = FakeClock()
    with Store(db_url, clock=clock) as store:
        job = new_job(store)
        assert store.claim_next("gpu-0", lease_seconds=10) is not None
        clock.advance(11)
        assert store.requeue_expired().requeued == [job.id]
        with pytest.raises(LeaseLost, match=r"is pending.*its lease expired and it was requeued"):
            store.heartbeat(job.id, "gpu-0")
        assert store.claim_next("gpu-1") is not None
        with pytest.raises(LeaseLost, match="another worker claimed it"):
            store.heartbeat(job.id, "gpu-0")
        store.complete_generation(job.id, file_path="a.wav", file_size_bytes=1, worker_id="gpu-1")
        with pytest.raises(LeaseLost, match=r"is completed.*it was completed") as lost:
            store.heartbeat(job.id, "gpu-1")
        assert "requeued" not in str(lost.value)

"""Session 28's behaviour-preserving tidying: what it moved still says and decides what it did."""

from __future__ import annotations

import logging

import psycopg
import pytest

from musicstore.errors import DatabaseBusy, DatabaseError
from musicstore.worker.steps import Outage


def _lost(kind: type[DatabaseError]) -> DatabaseError:
    """A try's error whose cause says the PostgreSQL connection was lost (no SQLSTATE: the socket closed)."""
    exc = kind("the connection is lost")
    exc.__cause__ = psycopg.OperationalError("server closed the connection unexpectedly")
    return exc


def test_an_outage_rides_out_a_lost_connection_never_a_busy_one_and_names_its_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``Outage.rides_out`` leaves ``DatabaseBusy`` to ``waiting.connection_lost`` (which refuses it, even
    with a lost connection's cause: psycopg_pool's ``PoolTimeout`` is an ``OperationalError``); its log
    gives the pause it is made with (the worker's ``WAIT_SLICE_SECONDS``), not a fixed "every second"."""
    caplog.set_level(logging.WARNING, logger="musicstore.worker")
    outage = Outage("w", 0.25)
    assert not outage.rides_out(_lost(DatabaseBusy))
    assert outage.since is None and not caplog.records
    assert outage.rides_out(_lost(DatabaseError))
    assert [r.getMessage() for r in caplog.records] == [
        "worker w: the database is unreachable (the connection is lost); trying again every 0.25 s for up "
        "to 300 s"
    ]

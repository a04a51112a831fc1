"""The throwaway PostgreSQL server (``musicstore.testing._pgserver``) and a port taken between its choice and
the server's bind: ``initdb`` runs in between (seconds), and another process may bind the port meanwhile.

Before: the server exited ("could not bind ... Address already in use") and ``start`` raised, failing every
PostgreSQL test of the run; and a server of another process answering on the port was taken for this one.
Now another port is tried (as ``_seaweed.start`` does), and only a server with this one's data folder is
taken as started."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psycopg
import pytest

from musicstore.testing import _pgserver


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another process holds (listening) for the whole test."""
    if _pgserver.find_bindir() is None:
        pytest.skip("needs PostgreSQL's server binaries")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_taken_before_the_server_binds_it_is_retried_on_another(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = _pgserver._free_port
    chosen: list[int] = []

    def first_taken() -> int:
        chosen.append(taken if not chosen else free())
        return chosen[-1]

    monkeypatch.setattr(_pgserver, "_free_port", first_taken)
    server = _pgserver.start()
    try:
        assert len(chosen) == 2 and server.port == chosen[1] != taken
        with psycopg.connect(server.url(), autocommit=True) as conn:
            answered = conn.execute("SHOW data_directory").fetchone()
        assert answered is not None and answered[0] == str(server.base / "data")
    finally:
        server.stop()


def test_a_port_taken_every_time_ends_in_an_error_that_says_so(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pgserver, "_free_port", lambda: taken)
    with pytest.raises(RuntimeError, match=f"could not bind port {taken}"):
        _pgserver.start(tries=2)

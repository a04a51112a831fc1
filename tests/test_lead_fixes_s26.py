"""The lead's fixes of session 26, each with the test that failed before it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from musicstore import Store, waiting
from musicstore.testing.plugin import MaskedUrl
from musicstore.waiting import hub as listening


def _forked_reads_started(shared: waiting._Poller | listening._Hub, lock_name: str) -> int:
    """Fork while another thread holds ``shared``'s lock; the child reads ``started`` (which takes that lock)
    and exits 0. Returns the child's exit status, or -1 when it did not end within 10 s (blocked: killed)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with getattr(shared, lock_name):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: only this thread; the parent's holder of the lock is not here
            try:
                os._exit(0 if shared.started is False else 2)
            except BaseException:
                os._exit(3)
    finally:
        release.set()
        holder.join(10)
    for _ in range(1000):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        threading.Event().wait(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_child_forked_while_the_sqlite_poller_holds_its_lock_can_wait(tmp_path: Path) -> None:
    """A process forked at the moment another thread of its parent holds the SQLite poller's lock (its thread
    does every 5 ms while a wait sleeps) takes the lock at its first wait: the lock, copied held, was never
    released in the child, which blocked for ever. The poller's locks are made anew in the child
    (``os.register_at_fork``)."""
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True) as store:
        assert store.claim_next("gpu-0", wait=0.01) is None  # the poller made and started
        poller = waiting.listeners(store).hub
        assert isinstance(poller, waiting._Poller)
        assert _forked_reads_started(poller, "_lock") == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_child_forked_while_the_postgres_hub_holds_its_lock_can_wait() -> None:
    """The same of the PostgreSQL hub's lock (its thread takes it at every notification)."""
    hub = listening._Hub(SimpleNamespace(url="postgresql://nobody@127.0.0.1:1/none"))
    assert _forked_reads_started(hub, "_lock") == 0


def test_the_postgres_url_fixtures_value_shows_no_password() -> None:
    """``musicstore_postgres_url`` is the URL itself: pytest shows a failing test's values by ``repr`` (an
    assertion's operands, ``--showlocals``), which printed a password of ``$MUSICSTORE_TEST_POSTGRES_URL``'s
    server. Its value is a ``str`` still, connected with as given, whose ``repr`` masks the password."""
    url = MaskedUrl("postgresql://admin:s3cret-pw@db.example:5432/musicstore_test_1?sslmode=require")
    assert isinstance(url, str)
    assert str(url) == "postgresql://admin:s3cret-pw@db.example:5432/musicstore_test_1?sslmode=require"
    assert url.replace("musicstore_test_1", "other").endswith("/other?sslmode=require")
    assert "s3cret-pw" not in repr(url)
    assert "admin" in repr(url) and "db.example:5432/musicstore_test_1" in repr(url)


pytest_plugins = ["pytester"]


def test_a_failing_tests_report_masks_the_urls_password(pytester: pytest.Pytester) -> None:
    """What pytest prints by ``repr`` of a failing test's URL (an assertion's explanation, ``--showlocals``)
    shows no password. (A text diff of ``url == other`` shows the strings themselves: pytest diffs any two
    ``str``.)"""
    pytester.makepyfile(
        """
        from musicstore.testing.plugin import MaskedUrl

        def test_fails():
            url = MaskedUrl("postgresql://admin:" + "s3cret" + "-pw@db.example/musicstore_test_1")
            assert url.startswith("mysql://")
        """
    )
    result = pytester.runpytest_subprocess("--showlocals", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "db.example/musicstore_test_1" in output
    assert "s3cret-pw" not in output

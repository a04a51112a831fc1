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
    assert held.wait(60)
    try:
        pid = os.fork()
        if pid == 0:  # the child: only this thread; the parent's holder of the lock is not here
            try:
                os._exit(0 if shared.started is False else 2)
            except BaseException:
                os._exit(3)
    finally:
        release.set()
        holder.join(60)
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


def test_a_whole_number_option_takes_ascii_digits_only(sqlite_url: str) -> None:
    """``--limit ٥`` (an Arabic-Indic five) was read as 5: ``int()`` reads any script's digits. A usage error
    now, as any other text that is not a whole number; ``1_000`` and ``+3`` still read as ``int()`` reads
    them."""
    from tests.test_cli import run

    for text in ("٥", "１", "5٥"):
        result = run("list", "--limit", text, "--database", sqlite_url)
        assert result.returncode == 2 and "is not a positive whole number" in result.stderr, result.stderr
    assert run("list", "--limit", "+3", "--database", sqlite_url).returncode == 0
    assert run("list", "--limit", "1_000", "--database", sqlite_url).returncode == 0


def test_samples_written_as_is_beyond_float32_once_scaled_warn_of_nothing(tmp_path: Path) -> None:
    """A clip written as given (``normalize=False``) as PCM_32 with samples over about 1.6e29 (beyond float32
    once scaled by 2**31) is clipped to full scale, as any sample over 1.0: numpy's "overflow in multiply"
    warning came out of the quantizer (an untyped RuntimeWarning under ``-W error``)."""
    import warnings

    import numpy as np
    import soundfile as sf

    from musicstore.audio import ExportOptions, export_audio

    clip = np.zeros((1, 4800), dtype=np.float32)
    clip[0, 100], clip[0, 200], clip[0, 300] = 1e30, -1e30, 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_audio(clip, 48_000, tmp_path / "loud.wav", ExportOptions(normalize=False, subtype="PCM_32"))
    written, _ = sf.read(tmp_path / "loud.wav", dtype="int32")
    assert written[100] >= 2**31 - 128 and written[200] == -(2**31) and written[300] == 2**30  # full scale


@pytest.mark.parametrize("pending", [2, 3])
def test_metrics_flag_a_cut_short_count_by_priority(
    db_url: str, monkeypatch: pytest.MonkeyPatch, pending: int
) -> None:
    """``/metrics`` says when the queue's count by priority stopped at its walk's 10,000 rows (as it says of
    the claims in flight, ``musicstore_processing_truncated``): ``musicstore_queue_depth_by_priority`` was
    then a lower bound with no sign of it. 1 exactly when more were pending than the walk reads."""
    from prometheus_client.parser import text_string_to_metric_families

    from musicstore.metrics import metrics_text, reads
    from tests.conftest import new_job

    monkeypatch.setattr(reads, "PENDING_LIMIT", 2)  # the walk's 10,000, made small
    with Store(db_url) as store:
        for i in range(pending):
            new_job(store, f"p{i}", priority=i - 1)
        text = metrics_text(store).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    flag = [s.value for s in families["musicstore_queue_depth_by_priority_truncated"].samples]
    assert flag == [1.0 if pending > 2 else 0.0]
    assert sum(s.value for s in families["musicstore_queue_depth_by_priority"].samples) == 2


def test_user_metadata_leaves_room_for_the_stores_checksum_in_s3s_2_kb(tmp_path: Path) -> None:
    """S3 holds 2 KB of an object's user metadata (names and values), and the store puts its ``sha256`` (64
    hex digits) beside the caller's: the caller's 2,048 bytes, as documented, made a put AWS refuses
    (MetadataTooLarge). The caller's budget is 1,978 bytes: with the checksum, 2,048 at most."""
    from musicstore.errors import InvalidInput
    from musicstore.filestore import LocalFileStore
    from musicstore.filestore.base import CHECKSUM_FIELD, MAX_METADATA_BYTES

    assert MAX_METADATA_BYTES + len(CHECKSUM_FIELD) + 64 == 2048
    files = LocalFileStore(tmp_path)
    most = {"pad": "x" * (MAX_METADATA_BYTES - 3)}
    files.put("a.wav", b"RIFF", metadata=most)
    assert files.head("a.wav").metadata == most
    with pytest.raises(InvalidInput, match="at most 1978"):
        files.put("b.wav", b"RIFF", metadata={"pad": "x" * (MAX_METADATA_BYTES - 2)})


def test_an_s3_servers_own_message_is_masked_as_the_rest() -> None:
    """The catch-all of the S3 error mapping quoted the server's message as it came: a server (or a proxy)
    that echoes what it was sent could put a registered secret in the error. Masked now, as the endpoint
    is."""
    from botocore.exceptions import ClientError

    from musicstore.errors import StorageError
    from musicstore.filestore.s3_errors import S3Errors
    from musicstore.masking import register_secret

    register_secret("S3cr3t-Echoed-Back")
    errors = S3Errors()
    errors.bucket, errors.url, errors.endpoint_url = "b", "s3://b/", "http://127.0.0.1:1"
    answer = {"Error": {"Code": "InternalError", "Message": "refused: key S3cr3t-Echoed-Back\nmore"}}
    with pytest.raises(StorageError) as caught:
        errors._fail("putting", "a.wav", ClientError(answer, "PutObject"))  # type: ignore[arg-type]
    assert "S3cr3t-Echoed-Back" not in str(caught.value) and "InternalError refused: key" in str(caught.value)


def test_postgres_waits_of_a_closed_event_loop_are_swept_as_others_register(postgres_url: str) -> None:
    """A ``wait_for`` asleep in an event loop closed without cancelling its tasks (not ``asyncio.run``) of a
    job that never finishes stayed registered with the PostgreSQL hub for ever (its task too: the hub held
    the last reference), dropped only when its own job's notification came. The hub sweeps such waits once
    as many waits registered as its last sweep left (at least ``_SWEEP_AFTER``): they cannot pile up."""
    import asyncio
    import gc
    import time

    from tests.conftest import new_job
    from tests.test_waits_hunt_s25 import _abandoned

    with Store(postgres_url) as store:
        never = new_job(store, "never finishes")
        tasks = _abandoned(store, never.id)  # a WORK wait and the wait_for, asleep in a closed loop
        hub = waiting.listeners(store).hub
        assert isinstance(hub, listening._Hub) and hub.waiters == 2
        pool = waiting.listeners(store)

        async def many() -> None:  # live waits of another loop, registered and then woken by a timeout
            async def one() -> None:
                listener = await pool.acquire_async(waiting.WORK)
                await listener.sleep(0.5)
                pool.release(listener)

            await asyncio.gather(*(one() for _ in range(listening._SWEEP_AFTER + 2)))

        asyncio.run(many())
        deadline = time.monotonic() + 60
        while hub.waiters:
            assert time.monotonic() < deadline, f"{hub.waiters} waits still registered"
            time.sleep(0.01)
        gc.collect()
        assert [task() for task in tasks] == [None, None]

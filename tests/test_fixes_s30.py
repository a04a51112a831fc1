"""Defects left open by session 29, each fixed with the test that showed it:

- a rendition format named in upper case (``MP3``) was refused by ``musicstore render`` and the API
  (``render_generation``, ``RenditionSpec``) while ``musicstore demo --renditions MP3`` took it: every path
  now takes a format in any case, as its canonical lower-case name (``codecs.format_name``);
- ``musicstore stats --storage`` printed the span of creation times as ISO text with microseconds and an
  offset (``2026-12-06T16:13:37.909999+00:00``), where every other table and line of the CLI prints a moment
  as ``moment_text`` does (``2026-12-06 16:13:37``, UTC said once);
- an ``S3FileStore``'s one-attempt view (``_briefly``, for a cleanup under a lock) asked for after the store
  was closed made a boto3 client that no ``close`` would ever close: it is now the store's closed error
  (``InvalidInput``, as a closed ``Store``'s), and a cleanup (``unput``) of a closed store says that its
  outcome is unknown instead of raising that error in place of the put's;
- ``musicstore demo`` stopped by a Ctrl-C and then a second one (a user pressing it twice) could be cut off
  while it cancelled its jobs not done (``_withdraw``), leaving them pending: the next demo refused the
  database ("holds N pending job(s) the demo did not enqueue"). The cancels now hold a Ctrl-C until done;
- an ``AsyncWorker`` run under ``asyncio.run`` without ``handle_signals`` and stopped by Ctrl-C (whose
  handler cancels the main task) left its job processing until its lease expired, where a ``Worker`` puts
  it back: it now puts it back too, a task cancelled otherwise still writing nothing more.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from musicstore import Store
from musicstore.aio import AsyncStore
from musicstore.audio import RenditionSpec
from musicstore.audio.codecs import rendition_specs
from musicstore.cli import main
from musicstore.cli.output import moment_text
from musicstore.errors import InvalidInput
from musicstore.models import Status
from musicstore.rendering import render_generation
from musicstore.worker import AsyncJob, AsyncWorker
from tests.test_rendition_store import exported

# --- 1: rendition format names in any case -------------------------------------------------------------


def test_a_rendition_format_in_upper_case_is_its_lower_case_name_in_the_api(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert RenditionSpec("MP3").format == "mp3" and RenditionSpec("Flac", subtype="PCM_24").format == "flac"
    assert [(s.format, s.bitrate_kbps) for s in rendition_specs(["OPUS", "Wav"], 96)] == [
        ("opus", 96),
        ("wav", None),
    ]
    with pytest.raises(InvalidInput, match=r"unknown rendition format 'MP4'; use one of \['mp3'"):
        RenditionSpec("MP4")
    with Store(sqlite_url) as store:
        done = exported(store, tmp_path)
        (made,) = render_generation(store, done.id, root=tmp_path, formats=["FLAC"])
        assert made.format == "flac" and made.storage_key.endswith(".flac")
        (again,) = render_generation(store, done.id, root=tmp_path, formats="flac")  # the same request
        assert again.id == made.id


def test_musicstore_render_takes_a_format_in_upper_case_as_the_demo_does(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(sqlite_url) as store:
        done = exported(store, tmp_path)
    where = ["--database", sqlite_url, "--output-root", str(tmp_path)]
    assert main(["render", done.id, "--format", "MP3", "--bitrate", "128k", "--json", *where]) == 0
    (made,) = json.loads(capsys.readouterr().out)["renditions"]
    assert made["format"] == "mp3" and made["bitrate_kbps"] == 128
    assert main(["render", done.id, "--format", "ogg", *where]) == 2  # a usage error naming the formats
    err = capsys.readouterr().err
    assert "unknown rendition format 'ogg'" in err and "'mp3', 'opus', 'vorbis', 'flac', 'wav'" in err


# --- 2: stats --storage prints its moments as the rest of the CLI ------------------------------------------


def test_stats_storage_prints_the_creation_span_as_the_other_commands_print_moments(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(sqlite_url) as store:
        first = store.create_generation("a", model_name="m", duration_seconds=1)
        last = store.create_generation("b", model_name="m", duration_seconds=1)
    assert main(["stats", "--storage", "--database", sqlite_url]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("recorded:")]
    span = f"created {moment_text(first.created_at)} .. {moment_text(last.created_at)} (UTC)"
    assert line == f"recorded: 2 generations, 0 bytes, {span}", out
    assert main(["list", "--database", sqlite_url]) == 0  # the same moment, as list prints it
    assert moment_text(first.created_at) in capsys.readouterr().out


# --- 3: the S3 store's one-attempt view after close ---------------------------------------------------------


def _s3_files() -> Any:
    pytest.importorskip("boto3", reason="the s3 extra is not installed")
    from musicstore.filestore import S3FileStore

    return S3FileStore("bucket", endpoint_url="http://127.0.0.1:9", access_key_id="id", secret_access_key="k")


@pytest.mark.parametrize("used_before", [False, True])
def test_the_one_attempt_view_of_a_closed_s3_store_is_refused_not_made_and_left_open(
    used_before: bool,
) -> None:
    from musicstore.filestore.base import briefly

    files = _s3_files()
    if used_before:
        assert briefly(files) is not files  # made on its first use, closed by close() below
    files.close()
    with pytest.raises(InvalidInput, match=r"the file store s3://bucket/ is closed"):
        briefly(files)
    made = files._brief
    assert made is None if not used_before else made is not None  # nothing made after the close
    files.close()  # closing again: nothing more to close, no error


def test_a_cleanup_of_a_put_on_a_closed_s3_store_keeps_the_puts_error() -> None:
    from musicstore.errors import StorageError
    from musicstore.filestore.base import unput

    files = _s3_files()
    files.close()
    error = StorageError("the put's reply was lost")
    assert unput(files, "a/g.wav", "g", error) is None  # unknown: the check could not be made
    assert any("is unknown (InvalidInput)" in note for note in error.__notes__)


# --- 5: the demo's second Ctrl-C ---------------------------------------------------------------------------


def test_a_second_ctrl_c_while_the_demo_withdraws_its_jobs_leaves_none_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicstore.cli.demo import run_demo

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    cancel = inspect.getattr_static(Store, "cancel")  # the operation's descriptor, as the class has it

    def cancel_with_a_second_ctrl_c(store: Store, *args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, as the first cancel is written
        return cancel.__get__(store, Store)(*args, **kwargs)

    def first_ctrl_c(done: int) -> None:
        monkeypatch.setattr(Store, "cancel", cancel_with_a_second_ctrl_c)
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C, after the first export

    with pytest.raises(KeyboardInterrupt):
        run_demo(
            url,
            count=4,
            seconds=0.5,
            output_root=tmp_path / "out",
            echo=lambda _: None,
            progress=first_ctrl_c,
        )
    monkeypatch.undo()
    with Store(url) as store:
        assert store.count_generations(status=Status.PENDING) == 0
        assert store.count_generations(status=Status.PROCESSING) == 0
        assert store.count_generations(status=Status.COMPLETED) == 1
        assert store.count_generations(status=Status.CANCELLED) == 3


# --- 4: an AsyncWorker's Ctrl-C ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_an_async_worker_stopped_by_ctrl_c_puts_its_job_back_as_a_worker_does(
    db_url: str, workers: int
) -> None:
    async def main() -> None:
        async with AsyncStore.open(db_url) as store:
            for i in range(workers):
                await store.create_generation(f"job {i}", model_name="m", duration_seconds=8)
            running: list[str] = []

            async def handler(job: AsyncJob) -> None:
                running.append(job.id)
                if len(running) == workers:  # every worker has a job in hand
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: asyncio.run's handler cancels its main task
                await asyncio.sleep(3600)

            try:
                await asyncio.gather(*(AsyncWorker(store, f"gpu-{i}", handler).run() for i in range(workers)))
            finally:
                interrupted.extend(running)

    interrupted: list[str] = []
    with pytest.raises(KeyboardInterrupt):  # as asyncio.run ends on a Ctrl-C
        asyncio.run(main())
    assert len(interrupted) == workers
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # every handler put back
    with Store(db_url) as store:
        for job_id in interrupted:
            row = store.get_generation(job_id)
            assert row is not None and row.status is Status.PENDING and row.worker_id is None, row
            assert row.error_message is not None and row.error_message.startswith(
                "the worker was interrupted (KeyboardInterrupt) with the job in hand"
            ), row.error_message

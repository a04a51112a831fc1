"""The worker side under signals (session 29), real processes sent SIGINT:

- a second Ctrl-C while ``export_batch_generations`` waited, after the first, for its running items (the
  thread pool's shutdown) ended that wait: the caller's ``with Store(...)`` then closed the store under the
  items, whose completions failed (every row left processing, the work lost, until its lease expired, with
  nothing said); the items running now end (recorded) whatever interrupts come, then the first is raised;
- a second Ctrl-C while ``export_batch`` waited, after the first, for its running items left their temp
  files beside the batch's paths (no cleanup knew of them); they are now removed;
- a Ctrl-C inside the pool's ``submit`` (as it started a thread: ``Thread.start`` waits) lost the future of
  the item it had queued already: both batch exports returned (raised) while that item still ran, unwaited
  (its row completed or its temp file written after the caller went on); every item that started is now
  waited for (``audio.threads.Batch``), not the futures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import musicstore.audio.export as audio_export
from musicstore import Status, Store, recording
from tests.conftest import new_job, until
from tests.ctrl_c import interrupted, slow_batch_export

ITEM_SECONDS = 4.0  # how long each batch item runs before its export: both interrupts land meanwhile

_RECORDING = slow_batch_export(ITEM_SECONDS)

_EXPORT = f"""
import os, sys, time
import numpy as np
import musicstore.audio.export as export

one = export._export_one

def slow(*args, **kwargs):
    os.write(1, b"started\\n")
    time.sleep({ITEM_SECONDS})
    return one(*args, **kwargs)

export._export_one = slow
audio = np.full((4, 1, 8000), 0.1, dtype=np.float32)
export.export_batch(audio, 8000, [f"{{sys.argv[1]}}/{{i}}.wav" for i in range(4)], workers=2)
"""


def _ctrl_c_twice(script: str, *args: str, started: int = 2) -> tuple[list[str], str]:
    """Run ``script``; once ``started`` items said so, Ctrl-C it twice (0.5 s apart); its lines and stderr."""
    lines, err, waited = interrupted(script, *args, started=started)
    assert waited < ITEM_SECONDS + 30  # it ends once the items running end
    return lines, err


def test_a_second_ctrl_c_in_a_batch_export_leaves_the_store_open_for_its_running_items(
    db_url: str, tmp_path: Path
) -> None:
    with Store(db_url) as store:
        clip = {"duration_seconds": 1.0, "sample_rate": 8000, "channels": 1}
        jobs = [new_job(store, f"song {i}", **clip) for i in range(4)]
    lines, err = _ctrl_c_twice(_RECORDING, db_url, str(tmp_path / "audio"))
    running = {line.split()[1] for line in lines}
    with Store(db_url) as store:
        rows = {job.id: store.get_generation(job.id) for job in jobs}
    for job_id, row in rows.items():
        assert row is not None
        if job_id in running:  # finished and recorded, its file in place
            assert row.status is Status.COMPLETED, (row, err)
            assert row.file_path is not None and (tmp_path / "audio" / row.file_path).is_file()
        else:  # never started: put back at once, as a Worker does (tests/test_release_s29.py)
            assert row.status is Status.PENDING and row.file_path is None, row


def test_a_second_ctrl_c_in_export_batch_leaves_no_temp_file(tmp_path: Path) -> None:
    _ctrl_c_twice(_EXPORT, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == []


def _slowed(function: Callable[..., Any]) -> tuple[Callable[..., Any], list[int]]:
    """``function`` begun after 0.5 s on its first call, 2 s on the later ones (the second item ends last),
    and the list of its calls so far."""
    calls: list[int] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.5 if len(calls) == 1 else 2.0)
        return function(*args, **kwargs)

    return slow, calls


def _ctrl_c_starting_the_second_thread(monkeypatch: pytest.MonkeyPatch, begun: list[int]) -> None:
    """A Ctrl-C inside the second ``submit``, as it starts its thread (``Thread.start`` waits for it): that
    item is queued and its thread runs it, but the thread is not yet noted (the pool's shutdown does not
    join it) and ``submit`` never returns its future. It comes once both items have begun (``begun``, the
    calls of the slowed export): an item whose thread had not taken it up yet would never start."""
    adjust = ThreadPoolExecutor._adjust_thread_count
    calls: list[int] = []

    def adjusted(pool: Any) -> None:
        before = set(pool._threads)
        adjust(pool)
        calls.append(1)
        if len(calls) == 2:
            pool._threads.difference_update(set(pool._threads) - before)
            until(lambda: len(begun) == 2)
            raise KeyboardInterrupt

    monkeypatch.setattr(ThreadPoolExecutor, "_adjust_thread_count", adjusted)


def test_a_ctrl_c_inside_submit_still_waits_for_the_item_it_queued(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_url) as store:
        clip = {"duration_seconds": 1.0, "sample_rate": 8000, "channels": 1}
        jobs = [new_job(store, f"song {i}", **clip) for i in range(3)]
        batch = store.claim_batch("gpu-0", 3)
        slowed, begun = _slowed(recording.export_generation)
        monkeypatch.setattr(recording, "export_generation", slowed)
        _ctrl_c_starting_the_second_thread(monkeypatch, begun)
        audio = np.full((3, 1, 8000), 0.1, dtype=np.float32)
        with pytest.raises(KeyboardInterrupt):
            recording.export_batch_generations(store, batch, audio, root=tmp_path, workers=2)
        statuses = [store.get_generation(job.id).status for job in jobs]  # type: ignore[union-attr]
    assert statuses == [Status.COMPLETED, Status.COMPLETED, Status.PENDING]  # the third never started: back


def test_a_ctrl_c_inside_submit_leaves_no_temp_file_of_the_item_it_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slowed, begun = _slowed(audio_export._export_one)
    monkeypatch.setattr(audio_export, "_export_one", slowed)
    _ctrl_c_starting_the_second_thread(monkeypatch, begun)
    audio = np.full((3, 1, 8000), 0.1, dtype=np.float32)
    with pytest.raises(KeyboardInterrupt):
        audio_export.export_batch(audio, 8000, [tmp_path / f"{i}.wav" for i in range(3)], workers=2)
    time.sleep(3.0)  # an item left running would write its temp by now
    assert sorted(os.listdir(tmp_path)) == []

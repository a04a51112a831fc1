"""Signals while a batch waits for its threads (session 32).

A batch export's Ctrl-C was raised wherever it landed in the main thread, which waited in a future's
``result()``: inside threading's own code (``Condition.wait``, ``Condition.__enter__``, a Python method).
Under load one landed between a lock's acquire and the ``with`` that releases it: the future's lock stayed
held, the item's thread waited on it forever in ``set_result``, and the pool's shutdown waited on that thread
(CI: the child of ``tests/test_worker_s29.py`` never ended). Now the wait holds SIGINT and SIGTERM
(``interrupt.held``) and runs their handlers only between waits (``threads.waited``): the handler is called
from ``Held.take``, never from threading's code, whatever it raises.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

import musicstore.audio.export as audio_export
from musicstore import Status, Store, interrupt, recording
from tests.conftest import new_job, until

_INTERRUPT_PY = os.path.abspath(interrupt.__file__)


class _Recorder:
    """A SIGINT handler that notes the file of the code that called it, then raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.callers: list[str] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.callers.append(os.path.abspath(sys._getframe(1).f_code.co_filename))
        raise KeyboardInterrupt


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    handler = _Recorder()
    before = signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, before)


def _interrupting(
    function: Callable[..., Any], signals: int, taken: Callable[[], bool]
) -> Callable[..., Any]:
    """``function`` that, on its first call, once a second call has begun (both threads' items begun: one
    not begun yet would be put back), sends this process ``signals`` SIGINTs (the main thread is waiting for
    them then); each call goes on once the handler ran (``taken``) and 0.3 s more (the batch wound up, no
    third item begun in a thread its item left)."""
    calls: list[int] = []
    lock = threading.Lock()

    def sending(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:
            until(lambda: len(calls) >= 2)
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.002)
        until(taken)
        time.sleep(0.3)
        return function(*args, **kwargs)

    return sending


def _pool_threads_end(before: set[threading.Thread]) -> None:
    """Every thread of a batch's pool started since ``before`` ended (none left waiting on a lock a Ctrl-C
    left held)."""
    deadline = time.monotonic() + 10.0
    while left := [t.name for t in set(threading.enumerate()) - before if t.name.startswith("ThreadPool")]:
        assert time.monotonic() < deadline, left
        time.sleep(0.05)


@pytest.mark.parametrize("signals", [1, 5])
def test_a_batch_exports_ctrl_c_runs_its_handler_between_waits_and_puts_back_the_rest(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: _Recorder, signals: int
) -> None:
    before = set(threading.enumerate())
    with Store(db_url) as store:
        clip = {"duration_seconds": 1.0, "sample_rate": 8000, "channels": 1}
        jobs = [new_job(store, f"song {i}", **clip) for i in range(4)]
        batch = store.claim_batch("gpu-0", 4)
        monkeypatch.setattr(
            recording,
            "export_generation",
            _interrupting(recording.export_generation, signals, lambda: bool(recorder.callers)),
        )
        audio = np.full((4, 1, 8000), 0.1, dtype=np.float32)
        with pytest.raises(KeyboardInterrupt):
            recording.export_batch_generations(store, batch, audio, root=tmp_path, workers=2)
        statuses = sorted(store.get_generation(job.id).status for job in jobs)  # type: ignore[union-attr]
    assert recorder.callers == [_INTERRUPT_PY]  # once, from Held.take: the later ones were dropped
    assert statuses == sorted([Status.COMPLETED] * 2 + [Status.PENDING] * 2)  # the two running end
    _pool_threads_end(before)


def test_export_batchs_ctrl_c_runs_its_handler_between_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: _Recorder
) -> None:
    before = set(threading.enumerate())
    monkeypatch.setattr(
        audio_export,
        "_export_one",
        _interrupting(audio_export._export_one, 3, lambda: bool(recorder.callers)),
    )
    audio = np.full((3, 1, 8000), 0.1, dtype=np.float32)
    with pytest.raises(KeyboardInterrupt):
        audio_export.export_batch(audio, 8000, [tmp_path / f"{i}.wav" for i in range(3)], workers=2)
    assert recorder.callers == [_INTERRUPT_PY]
    assert sorted(os.listdir(tmp_path)) == []
    _pool_threads_end(before)


def test_a_handler_that_does_not_raise_lets_the_batch_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that only notes (a worker's SIGTERM: stop after this job) is run between waits and the
    batch goes on to its end, every file written."""
    seen: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        monkeypatch.setattr(
            audio_export, "_export_one", _interrupting(audio_export._export_one, 2, lambda: bool(seen))
        )
        audio = np.full((3, 1, 8000), 0.1, dtype=np.float32)
        paths = audio_export.export_batch(audio, 8000, [tmp_path / f"{i}.wav" for i in range(3)], workers=2)
    finally:
        signal.signal(signal.SIGINT, before)
    assert len(paths) == 3 and sorted(os.listdir(tmp_path)) == ["0.wav", "1.wav", "2.wav"]
    assert seen and set(seen) == {signal.SIGINT}  # each run (two sent; two landing at once are one)


def test_held_runs_what_landed_in_order_at_take_and_as_it_ends_unless_dropped() -> None:
    ran: list[tuple[str, int]] = []

    def on_int(signum: int, frame: FrameType | None) -> None:
        ran.append(("int", signum))

    def on_term(signum: int, frame: FrameType | None) -> None:
        ran.append(("term", signum))

    before = {
        signal.SIGINT: signal.signal(signal.SIGINT, on_int),
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
    }
    try:
        with interrupt.held() as signals:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert ran == []  # noted, not run
            signals.take()
            assert ran == [("term", signal.SIGTERM), ("int", signal.SIGINT)]
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert ran[2:] == [("int", signal.SIGINT)]  # run as the block ended
        with interrupt.held() as signals:
            signals.drop()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert len(ran) == 3  # dropped
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (on_int, on_term)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_held_puts_the_handlers_back_and_holds_nothing_outside_the_main_thread() -> None:
    original = signal.getsignal(signal.SIGINT)
    with interrupt.held():
        assert signal.getsignal(signal.SIGINT) is not original
    assert signal.getsignal(signal.SIGINT) is original
    inside: list[object] = []

    def other() -> None:
        with interrupt.held() as signals:
            inside.append(signal.getsignal(signal.SIGINT))
            signals.take()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert inside == [original]

"""``export_batch``'s items on a thread pool, all or nothing for the files at their paths.

Each item writes its file to a temp beside its final path (``files.stage``) and does not rename it. Once
every item has succeeded, the temps are renamed into place and their folders fsynced (``files.place``, the
step ``place_atomic`` ends with). If an item fails, or the wait for them is interrupted, every temp is
removed and no path is touched: an earlier file at a path stays as it was, a path that had none still has
none. An item fails fast: the items not started by then are not started (a flag each checks as it starts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from musicstore import interrupt
from musicstore.audio.files import Staged, place
from musicstore.audio.threads import Batch, on_one_core, waited

_T = TypeVar("_T")

Item = Callable[[list[Staged]], _T]
"""An item: given a list, it writes its file to a temp (``files.stage``) that it appends there."""

_Done = tuple[_T, list[Staged]] | None
"""What an item's thread gives back: its result and its staged files, or None when it did not start."""


def run_all(
    items: Sequence[Item[_T]],
    workers: int,
    wait: Callable[[Future[_Done[_T]]], _Done[_T] | Exception],
) -> list[_T]:
    """Each item's result, in order, its file at its path; or the first item's error (by index), with a
    note naming it, and no file at any path changed.

    ``workers`` threads (each item on one core where there are several: ``threads.on_one_core``); ``wait``
    gives an item's future's result or the ``Exception`` it raised. An interrupt while waiting (Ctrl-C) sets
    the flag and cancels the items not started, lets those running finish, removes every temp and is raised.
    A failure while placing the files (a rename or a folder's fsync, after every item succeeded) is what
    ``files.place`` raises: the paths it names did not get their files, the others did."""
    batch = Batch()
    kept: list[list[Staged]] = []  # each item's staged files, as it succeeds
    outcomes: list[_Done[_T] | Exception] = []
    try:  # a Ctrl-C once the items are done (as the pool ends, before place takes over): their temp files go
        stopped: BaseException | None = None
        with interrupt.held() as signals, ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                futures = [pool.submit(_started, item, batch, kept, workers > 1) for item in items]
                outcomes = waited(futures, wait, signals)
            except BaseException as exc:  # the items running end whatever interrupts come meanwhile
                stopped = exc
                signals.drop()
                batch.wind_up()
        if stopped is not None:
            _discard_all(kept, stopped)
            raise stopped
        done = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
        errors = [(i, outcome) for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
        if errors:
            index, first = errors[0]
            _discard([_staged(outcome) for outcome in done], first)
            skipped = sum(outcome is None for outcome in outcomes)
            first.add_note(
                f"batch item {index} of {len(items)}; no file at the batch's paths was changed"
                + (f" ({skipped} items not started)" if skipped else "")
            )
            raise first
        place([file for _, staged in done for file in staged])
    except BaseException as exc:
        _discard([_staged(outcome) for outcome in outcomes if isinstance(outcome, tuple)], exc)
        raise
    return [result for result, _ in done]


def _started(item: Item[_T], batch: Batch, kept: list[list[Staged]], one_core: bool) -> _Done[_T]:
    if not batch.begin():  # an item failed, or the wait was interrupted: not started
        return None
    staged: list[Staged] = []
    try:
        result = on_one_core(item, staged) if one_core else item(staged)
    except BaseException as exc:
        batch.stop.set()
        _discard([staged], exc)
        raise
    else:
        kept.append(staged)
    finally:
        batch.end()
    return result, staged


def _staged(done: _Done[_T]) -> list[Staged]:
    return [] if done is None else done[1]


def _discard(staged: Sequence[list[Staged]], error: BaseException) -> None:
    for files in staged:
        for file in files:
            file.discard(error)


def _discard_all(staged: Sequence[list[Staged]], error: BaseException) -> None:
    """``_discard``, begun again when an interrupt cuts it short (a removal of one already gone is none)."""
    while True:
        try:
            return _discard(staged, error)
        except KeyboardInterrupt:
            continue

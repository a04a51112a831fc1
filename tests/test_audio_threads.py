"""The export's helper threads (``musicstore.audio.threads.beside``): results and errors come back to the
caller, and a forked child makes its own pool."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from musicstore.audio.threads import alone, beside, joined, on_one_core


def test_a_task_runs_on_another_thread_and_its_result_comes_back() -> None:
    ran_on = beside(threading.get_ident).result()
    assert ran_on != threading.get_ident()
    assert beside(divmod, 17, 5).result() == (3, 2)


def test_a_tasks_error_is_raised_by_result() -> None:
    future = beside(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        future.result()


def test_joined_waits_for_the_task_and_keeps_the_callers_error() -> None:
    """The caller's own error (a Ctrl-C) is raised, not the task's, and only once the task has ended."""
    release = threading.Event()

    def task() -> None:
        release.wait(10)
        raise ValueError("the task failed")

    def interrupted() -> None:
        release.set()
        raise KeyboardInterrupt

    aside = beside(task)
    with pytest.raises(KeyboardInterrupt):
        joined(interrupted, aside)
    assert aside.done()
    assert joined(lambda: 2, beside(divmod, 7, 2)) == (2, (3, 1))
    with pytest.raises(ValueError, match="the task failed"):
        joined(lambda: None, beside(task))


def test_within_on_one_core_tasks_run_on_the_calling_thread() -> None:
    """An export_batch's item runs its helper tasks itself; its errors still come back through ``result``."""

    def item() -> tuple[int, bool]:
        with pytest.raises(ValueError):
            beside(int, "x").result()
        return beside(threading.get_ident).result(), alone()

    ran_on, was_alone = beside(on_one_core, item).result()
    assert was_alone and ran_on != threading.get_ident()  # the item's own thread, one of the pool's
    assert not alone()
    assert on_one_core(beside(threading.get_ident).result) != threading.get_ident()  # made outside: pooled
    assert on_one_core(lambda: beside(threading.get_ident).result()) == threading.get_ident()
    assert on_one_core(lambda: (on_one_core(alone), alone())) == (True, True)  # nested: still alone after
    assert not alone()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_runs_tasks_on_its_own_threads() -> None:
    """The parent's pool threads are not in a forked child: without a pool of its own the child's task
    would wait forever."""
    assert beside(int, "7").result() == 7  # the parent's pool exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running pytest's exit handlers
        try:
            code = 0 if beside(divmod, 9, 4).result(timeout=10) == (2, 1) else 1
        except BaseException:
            code = 2
        os.write(write, bytes([code]))
        os._exit(0)
    os.close(write)
    try:
        reported = os.read(read, 1)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert reported == b"\x00", f"the child's task failed (code {list(reported)}) on {sys.platform}"

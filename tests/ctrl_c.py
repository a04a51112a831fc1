"""A real Ctrl-C for tests: a child Python running a script, sent SIGINT once its work has started
(tests/test_release_s29.py, tests/test_worker_s29.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONFAULTHANDLER": "1"}
"""The child's environment: it imports what this process does (this checkout's musicstore), and a SIGABRT
prints its threads' stacks."""


def slow_batch_export(item_seconds: float) -> str:
    """A script (argv: a database URL, a folder) that claims 4 jobs as ``gpu-0`` and exports them with
    ``export_batch_generations``, 2 at a time; each item writes ``started <id>`` on stdout, then waits
    ``item_seconds`` before its export (the interrupts land meanwhile)."""
    return f"""
import os, sys, time
import numpy as np
from musicstore import recording
from musicstore import Store

exporting = recording.export_generation

def slow(store, generation, *args, **kwargs):
    os.write(1, f"started {{generation.id}}\\n".encode())  # one write: the two threads' lines stay whole
    time.sleep({item_seconds})
    return exporting(store, generation, *args, **kwargs)

recording.export_generation = slow
with Store(sys.argv[1]) as store:
    batch = store.claim_batch("gpu-0", 4)
    audio = np.full((4, 1, 8000), 0.1, dtype=np.float32)
    recording.export_batch_generations(store, batch, audio, root=sys.argv[2], workers=2)
"""


def interrupted(
    script: str, *args: str, started: int = 2, interrupts: int = 2
) -> tuple[list[str], str, float]:
    """Run ``script`` (``python -c``, with ``args``); once ``started`` lines of it said "started", send it
    SIGINT ``interrupts`` times, 0.5 s apart. Its lines, its stderr (it ended with ``KeyboardInterrupt``:
    asserted), and the seconds it took to end after the last SIGINT."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=CHILD_ENV,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(started)]
        assert all(line.startswith("started") for line in lines), lines
        for i in range(interrupts):
            if i:
                time.sleep(0.5)
            process.send_signal(signal.SIGINT)  # a later one while the first one's cleanup waits
        began = time.monotonic()
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # its threads' stacks (faulthandler) say where it waits
            process.send_signal(signal.SIGABRT)
            _, err = process.communicate(timeout=20)
            raise AssertionError(f"it did not end within 60 s of the last SIGINT:\n{err}") from None
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "KeyboardInterrupt" in err, err
    return lines, err, time.monotonic() - began

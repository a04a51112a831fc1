"""The worker side under signals (session 29), real processes sent SIGINT:

- a second Ctrl-C while ``export_batch_generations`` waited, after the first, for its running items (the
  thread pool's shutdown) ended that wait: the caller's ``with Store(...)`` then closed the store under the
  items, whose completions failed (every row left processing, the work lost, until its lease expired, with
  nothing said); the items running now end (recorded) whatever interrupts come, then the first is raised;
- a second Ctrl-C while ``export_batch`` waited, after the first, for its running items left their temp
  files beside the batch's paths (no cleanup knew of them); they are now removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from musicstore import Status, Store
from tests.conftest import new_job

_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
ITEM_SECONDS = 4.0  # how long each batch item runs before its export: both interrupts land meanwhile

_RECORDING = f"""
import os, sys, time
import numpy as np
import musicstore.recording as recording
from musicstore import Store

exporting = recording.export_generation

def slow(store, generation, *args, **kwargs):
    os.write(1, f"started {{generation.id}}\\n".encode())  # one write: the two threads' lines stay whole
    time.sleep({ITEM_SECONDS})
    return exporting(store, generation, *args, **kwargs)

recording.export_generation = slow
with Store(sys.argv[1]) as store:
    batch = store.claim_batch("gpu-0", 4)
    audio = np.full((4, 1, 8000), 0.1, dtype=np.float32)
    recording.export_batch_generations(store, batch, audio, root=sys.argv[2], workers=2)
"""

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
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_ENV,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(started)]
        assert all(line.startswith("started") for line in lines), lines
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)  # while the first one's cleanup waits for the items running
        began = time.monotonic()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "KeyboardInterrupt" in err, err
    assert time.monotonic() - began < ITEM_SECONDS + 30  # it ends once the items running end
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
        else:  # never started: still claimed, left to its lease (nothing written)
            assert row.status is Status.PROCESSING and row.file_path is None, row


def test_a_second_ctrl_c_in_export_batch_leaves_no_temp_file(tmp_path: Path) -> None:
    _ctrl_c_twice(_EXPORT, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == []

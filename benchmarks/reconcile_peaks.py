"""What checking recorded waveform peaks files costs a local reconcile (CPU time).

    .venv/bin/python -m benchmarks.reconcile_peaks                 # 5,000 rows, 5 runs each way
    .venv/bin/python -m benchmarks.reconcile_peaks --rows 1000 --runs 3

Builds two SQLite stores of N completed generations, each with a 64-byte master and a 12 KB peaks file
beside it: in one the peaks file is recorded in ``metadata["peaks"]`` (key, bytes, SHA-256: reconcile opens,
sizes and hashes it), in the other it is not (reconcile knows it by its name only). Reports the process CPU
time of ``reconcile`` over each, median and minimum of the runs, and asserts both stores read as consistent.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from musicstore import Store
from musicstore.maintenance.reconcile import reconcile

DAY = "2026/01/02"


def build(folder: Path, rows: int, *, record: bool) -> tuple[Store, Path]:
    """A store of ``rows`` completed generations with their masters and peaks files under ``folder/audio``."""
    root = folder / "audio"
    (root / DAY).mkdir(parents=True)
    store = Store(f"sqlite:///{folder}/db.sqlite", migrate=True)
    body = b"x" * 12_000
    sha = hashlib.sha256(body).hexdigest()
    for i in range(rows):
        store.create_generation(f"prompt {i}", model_name="m", duration_seconds=1)
        job = store.claim_next("bench")
        assert job is not None
        (root / f"{DAY}/{job.id}.wav").write_bytes(b"\0" * 64)
        key = f"{DAY}/{job.id}.peaks.256.8.json"
        (root / key).write_bytes(body)
        metadata = {"peaks": {"key": key, "bytes": len(body), "sha256": sha}} if record else None
        store.complete_generation(
            job.id, file_path=f"{DAY}/{job.id}.wav", file_size_bytes=64, metadata=metadata
        )
    return store, root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000, help="completed generations per store (5000)")
    parser.add_argument("--runs", type=int, default=5, help="reconciles timed per store (5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reconcile-peaks-") as work:
        for record in (False, True):
            store, root = build(
                Path(work) / ("recorded" if record else "unrecorded"), args.rows, record=record
            )
            try:
                seconds = []
                for _ in range(args.runs):
                    start = time.process_time()
                    report = reconcile(store, root)
                    seconds.append(time.process_time() - start)
                    assert report.consistent, report
            finally:
                store.close()
            print(
                f"peaks recorded={record} rows={args.rows} peaks_checked={report.peaks_checked} "
                f"CPU s median {statistics.median(seconds):.3f} min {min(seconds):.3f}"
            )


if __name__ == "__main__":
    main()

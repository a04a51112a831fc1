"""Export + record of a 30 s stereo clip to S3 (a throwaway SeaweedFS) against the same to a local folder and
against the floor: the same export to a temp file, then its bytes PUT by the bare boto3 client.

    .venv/bin/python -m benchmarks.record_s3 [--rounds 9] [--batch 16]

Each round times, in rotating order, ``export_generation(root=<local folder>)``,
``export_generation(root=<S3FileStore>)`` (a fresh claimed generation each, SQLite store) and the floor
(``export_audio`` to a temp file + ``put_object``, no database). With ``--batch N``:
``export_batch_generations`` of N clips against the floor's N runs on a pool of as many threads (one a
core). Prints ms median (min) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from musicstore import Store
from musicstore.audio import ExportOptions, export_audio, synthesize_music
from musicstore.filestore import open_filestore
from musicstore.recording import export_batch_generations, export_generation
from musicstore.testing._seaweed import start

RATE, SECONDS = 32_000, 30.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=0, help="clips per batch (0: one clip per call)")
    parsed = parser.parse_args()
    rounds, size = parsed.rounds, parsed.batch
    clip = synthesize_music(SECONDS, RATE, channels=2, seed=0)
    options = ExportOptions(dither_seed=0)
    server = start()
    work = Path(tempfile.mkdtemp(prefix="bench-record-s3-"))
    try:
        client = server.client()
        settings: Any = server.options
        objects = open_filestore(f"s3://{server.bucket}/{server.prefix}bench/", **settings)
        store = Store(f"sqlite:///{work / 'db.sqlite'}", migrate=True)

        def claimed() -> object:
            store.create_generation("bench", model_name="m", duration_seconds=SECONDS, sample_rate=RATE)
            job = store.claim_next("w")
            assert job is not None
            return job

        counter = iter(range(1_000_000))

        def local() -> Callable[[], object]:
            job = claimed()
            return lambda: export_generation(store, job, clip, root=work / "audio", options=options)  # type: ignore[arg-type]

        def s3() -> Callable[[], object]:
            job = claimed()
            return lambda: export_generation(store, job, clip, root=objects, options=options)  # type: ignore[arg-type]

        def floor() -> Callable[[], object]:
            path = work / f"floor-{next(counter)}.wav"

            def run() -> None:
                export_audio(clip, RATE, path, options)
                client.put_object(
                    Bucket=server.bucket, Key=f"{server.prefix}floor/{path.name}", Body=path.read_bytes()
                )
                path.unlink()

            return run

        one_floor = floor
        if size:
            batch = np.stack([clip] * size)
            pool = ThreadPoolExecutor(max_workers=min(size, os.cpu_count() or 1))

            def claimed_batch() -> list[Any]:
                for _ in range(size):
                    store.create_generation(
                        "bench", model_name="m", duration_seconds=SECONDS, sample_rate=RATE
                    )
                return store.claim_batch("w", size)

            def local_batch() -> Callable[[], object]:
                jobs = claimed_batch()
                return lambda: export_batch_generations(
                    store, jobs, batch, root=work / "audio", options=options
                )

            def s3_batch() -> Callable[[], object]:
                jobs = claimed_batch()
                return lambda: export_batch_generations(store, jobs, batch, root=objects, options=options)

            def floor_batch() -> Callable[[], object]:
                runs = [one_floor() for _ in range(size)]
                return lambda: list(pool.map(lambda run: run(), runs))

            local, s3, floor = local_batch, s3_batch, floor_batch
        call = "export_batch_generations" if size else "export_generation"
        cases = {
            f"{call} to a local folder": local,
            f"{call} to S3": s3,
            "export_audio + bare put_object": floor,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for round_ in range(rounds + 1):
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                run = cases[name]()
                started = time.perf_counter()
                run()
                if round_:  # the first round warms up
                    times[name].append((time.perf_counter() - started) * 1000)
        base = statistics.median(times[names[2]]), min(times[names[2]])
        what = f"batches of {size}" if size else "one clip a call"
        print(f"load {os.getloadavg()[0]:.1f}, {rounds} alternated rounds, 30 s stereo 32 kHz PCM_16, {what}")
        for name in names:
            med, low = statistics.median(times[name]), min(times[name])
            print(f"{name:40s} {med:8.1f} ({low:6.1f}) ms  {med / base[0]:.2f}x ({low / base[1]:.2f}x) floor")
        store.close()
        objects.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

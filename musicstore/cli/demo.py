"""The README's main job: a generation worker's life on the embedded SQLite default, end to end.

Generations are enqueued, a worker claims each one, "generates" music-like audio (a torch tensor when
torch is installed, else a numpy array), exports it as a loudness-normalized WAV under the output root
and completes it; the loudness figures of every file are printed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..audio import synthesize_music
from ..errors import InvalidInput
from ..migrate import migrate
from ..models import Stats
from ..recording import export_generation
from ..store import Store
from ..urls import without_password
from .table import table

DEFAULT_OUTPUT_ROOT = "data/audio"

# prompt, bpm, drum level (0: none; higher: more dynamic, so the limiter has work to do)
PROMPTS = [
    ("lofi hip hop at 90 BPM with warm vinyl crackle", 90, 0.6),
    ("ambient drone in D minor, slow evolving pads", 70, 0.0),
    ("upbeat synthwave at 118 BPM", 118, 1.2),
    ("solo piano ballad, gentle and sparse", 76, 0.2),
    ("drum and bass at 174 BPM, heavy breaks", 174, 3.0),
]


def _model(seconds: float, sample_rate: int, channels: int, metadata: dict[str, Any]) -> Any:
    """Stand-in for the text-to-music model: a torch tensor if torch is installed, else numpy."""
    audio = synthesize_music(
        seconds,
        sample_rate,
        bpm=float(metadata.get("bpm", 120)),
        channels=channels,
        seed=int(metadata.get("seed", 0)),
        drums=float(metadata.get("drums", 1.0)),
    )
    try:
        import torch
    except ImportError:
        return audio
    return torch.from_numpy(audio)


def _db(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.2f}"


def run_demo(
    url: str | None = None,
    *,
    count: int = 5,
    worker_id: str = "demo-worker",
    output_root: str | Path = DEFAULT_OUTPUT_ROOT,
    seconds: float = 8.0,
    echo: Callable[[str], None] = print,
    progress: Callable[[int], None] | None = None,
) -> Stats:
    """Migrate, enqueue ``count`` generations, then claim, synthesise, export and complete each.

    The demo works only on its own jobs: it refuses a database that already holds pending jobs (it would claim
    them), and if it claims a job another process enqueued while it ran, it hands that job back and stops.
    ``progress(done)`` is called after each export (the CLI draws its progress bar with it).
    """
    applied = migrate(url)
    root = output_root if "://" in str(output_root) else Path(output_root)  # s3://BUCKET/PREFIX: objects
    rows: list[list[str]] = []
    with Store(url) as store:
        waiting = store.count_generations(status="pending")
        if waiting:
            raise InvalidInput(
                f"{without_password(store.url.url)} holds {waiting} pending job(s) the demo did not enqueue "
                "and would claim; run the demo on a database of its own (--database)"
            )
        echo(f"database: {without_password(store.url.url)} ({len(applied)} migration(s) applied)")
        echo(f"audio:    {root}")
        ours: set[str] = set()
        for i in range(count):
            prompt, bpm, drums = PROMPTS[i % len(PROMPTS)]
            job = store.create_generation(
                prompt,
                model_name="musicgen-small",
                duration_seconds=seconds,
                sample_rate=32_000,
                channels=2,
                metadata={"bpm": bpm, "seed": i, "drums": drums},
            )
            echo(f"enqueued  {job.id}  {prompt!r}")
            ours.add(job.id)
        while (claimed := store.claim_next(worker_id, lease_seconds=60)) is not None:
            if claimed.id not in ours:  # enqueued by someone else meanwhile: hand it back and stop
                store.fail(
                    claimed.id,
                    "claimed by the demo by mistake; handed back",
                    max_attempts=claimed.attempts + 1,  # always back to pending, never failed
                    worker_id=worker_id,
                )
                raise InvalidInput(
                    f"another process enqueued job {claimed.id} while the demo ran; the demo handed it back "
                    "and stopped: run the demo on a database of its own (--database)"
                )
            store.heartbeat(
                claimed.id, worker_id, lease_seconds=60
            )  # a real worker beats while the model runs
            audio = _model(claimed.duration_seconds, claimed.sample_rate, claimed.channels, claimed.metadata)
            done = export_generation(store, claimed, audio, root=root, worker_id=worker_id)
            m = done.generation.metadata
            rows.append([
                str(done.generation.file_path),
                str(m["bpm"]),
                _db(m["loudness_before_lufs"]),
                _db(m["loudness_lufs"]),
                _db(m["true_peak_dbtp"]),
                _db(m["gain_db"]),
                _db(m["limiter_max_reduction_db"]),
                f"{100 * m['limiter_fraction']:.1f}",
                str(m["loudness_status"]),
                f"{done.generation.file_size_bytes:,}",
            ])  # fmt: skip
            if progress is not None:
                progress(len(rows))
        echo("")
        headers = ["file", "bpm", "LUFS in", "LUFS out", "dBTP", "gain dB", "limit dB", "limited %",
                   "status", "bytes"]  # fmt: skip
        for line in table(rows, headers):
            echo(line)
        echo("")
        return store.get_database_stats()

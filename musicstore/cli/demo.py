"""The README's main job: a generation worker's life on the embedded SQLite default, end to end.

Generations are enqueued, a worker claims each one, "generates" music-like audio (a torch tensor when
torch is installed, else a numpy array), exports it as a loudness-normalized WAV under the output root (a
folder or ``s3://BUCKET/PREFIX``) and completes it; with ``renditions``, it makes and records those of each
job beside its master (``musicstore.rendering``); the loudness figures of every file are printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import interrupt, validate
from ..audio import RenditionSpec, get_profile, synthesize_music
from ..audio.renditions import check_installed
from ..errors import InvalidInput, MusicstoreError
from ..filestore import FileStore, open_filestore
from ..migrate import migrate
from ..models import Stats, Status
from ..ops import Rendition
from ..recording import export_generation
from ..rendering import render_generation
from ..store import Store
from ..urls import without_password
from .table import escape_controls, table

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


SAMPLE_RATE, CHANNELS = 32_000, 2


def rendition_formats(renditions: str | Sequence[str]) -> list[str]:
    """``"mp3,opus"`` (or a list) as checked format names, each once: ``InvalidInput`` for an unknown one or
    one the demo's 32 kHz stereo masters cannot have (checked before anything is enqueued)."""
    if isinstance(renditions, str) and not renditions.strip():
        return []  # none asked for (the CLI's default)
    names = renditions.split(",") if isinstance(renditions, str) else list(renditions)
    formats: list[str] = []
    for given in names:
        if isinstance(given, str) and not given.strip():
            raise InvalidInput("--renditions takes format names separated by commas, such as mp3,opus")
        spec = RenditionSpec(given.strip() if isinstance(given, str) else given)  # "MP3" as "mp3"
        spec.settings(SAMPLE_RATE, CHANNELS)  # InvalidInput: unknown or impossible here
        if spec.format not in formats:
            formats.append(spec.format)
    return formats


def run_demo(
    url: str | None = None,
    *,
    count: int = 5,
    worker_id: str = "demo-worker",
    output_root: str | Path = DEFAULT_OUTPUT_ROOT,
    seconds: float = 8.0,
    echo: Callable[[str], None] = print,
    progress: Callable[[int], None] | None = None,
    renditions: str | Sequence[str] = (),
    profile: str = "streaming",
    collect: list[dict[str, Any]] | None = None,
) -> Stats:
    """Migrate, enqueue ``count`` generations, then claim, synthesise, export and complete each.

    ``renditions`` (``"mp3,opus"`` or a list of format names): each job's renditions at ``profile``, made
    and recorded beside its master once it is completed. ``collect``: a list that gets one entry per job
    (``generation``: its row; ``storage_url``, ``key``, ``checksum``: where its file is; ``renditions``).

    The demo works only on its own jobs: it refuses a database that already holds pending jobs (it would claim
    them), and if it claims a job another process enqueued while it ran, it hands that job back and stops.
    Stopped early (an error, Ctrl-C, SIGTERM), it cancels its own jobs not done before the error goes on.
    ``progress(done)`` is called after each export (the CLI draws its progress bar with it).
    """
    count = validate.integer(count, "count", 1)  # the arguments checked before anything is written
    seconds = validate.duration(seconds)
    validate.name(worker_id, "worker_id")
    formats = rendition_formats(renditions)
    chosen = get_profile(profile)
    if formats:  # the renditions extra, before a job is made whose renditions could not be
        check_installed()
    applied = migrate(url)
    text = str(output_root)
    objects = open_filestore(text) if text.startswith("s3://") else None  # one client for every job
    root = objects if objects is not None else text if "://" in text else Path(text)
    try:
        return _jobs(
            url, root, output_root, applied, count=count, worker_id=worker_id, seconds=seconds, echo=echo,
            progress=progress, formats=formats, profile=chosen.name, collect=collect,
        )  # fmt: skip
    finally:
        if objects is not None:
            objects.close()


def _check_root(root: str | Path | FileStore) -> None:
    """Raise what the first export would for an unusable root, before anything is enqueued: a bucket that is
    not there, credentials it refuses or an endpoint out of reach (one listing of a page of one key), a
    folder that cannot be made (it is made now, as the first export would). Otherwise the demo enqueued its
    jobs, failed the first and left the rest pending, and the database refused every later demo."""
    if isinstance(root, FileStore):
        next(iter(root.list(page_size=1)), None)
    else:
        open_filestore(root).close()


def _withdraw(store: Store, ours: set[str]) -> None:
    """Cancel the demo's jobs not done when it stops early (its pending ones, the one in hand), so that none
    waits in the queue for a worker (nor makes the next demo refuse the database). Best effort: the error
    that stopped the demo is what is reported, and the first error here ends it (a database gone away is not
    waited for once per job). A Ctrl-C meanwhile (a second one) is held until the cancels are written, then
    raised (``interrupt.deferred``): cut off, they left the rest pending, and the next demo refused the
    database."""
    with interrupt.deferred(), contextlib.suppress(MusicstoreError):
        for generation_id in sorted(ours):
            found = store.get_generation(generation_id)
            if found is not None and found.status in (Status.PENDING, Status.PROCESSING):
                store.cancel(generation_id, "the demo stopped before finishing this job")


def _enqueue(store: Store, count: int, seconds: float, ours: set[str]) -> list[tuple[str, str]]:
    """Enqueue the demo's ``count`` jobs in one transaction, each id in ``ours`` before the commit: stopped
    part-way (Ctrl-C, SIGTERM), none is enqueued; stopped after the commit, ``ours`` names them all for
    ``_withdraw``. (One at a time, a job committed and then stopped before it was counted as the demo's stayed
    pending, and the next demo refused the database: ``musicstore demo | head -1``, whose first "enqueued"
    line met the closed pipe.) Returns each job's id and prompt, in order."""
    jobs: list[tuple[str, str]] = []
    with store.transaction():
        for i in range(count):
            prompt, bpm, drums = PROMPTS[i % len(PROMPTS)]
            job = store.create_generation(
                prompt,
                model_name="musicgen-small",
                duration_seconds=seconds,
                sample_rate=SAMPLE_RATE,
                channels=CHANNELS,
                metadata={"bpm": bpm, "seed": i, "drums": drums},
            )
            ours.add(job.id)
            jobs.append((job.id, prompt))
    return jobs


def _jobs(
    url: str | None,
    root: str | Path | FileStore,
    output_root: str | Path,
    applied: Sequence[object],
    *,
    count: int,
    worker_id: str,
    seconds: float,
    echo: Callable[[str], None],
    progress: Callable[[int], None] | None,
    formats: list[str],
    profile: str,
    collect: list[dict[str, Any]] | None,
) -> Stats:
    rows: list[list[str]] = []
    made_rows: list[list[str]] = []
    with Store(url) as store:
        waiting = store.count_generations(status="pending")
        if waiting:
            raise InvalidInput(
                f"{without_password(store.url.url)} holds {waiting} pending job(s) the demo did not enqueue "
                "and would claim; run the demo on a database of its own (--database)"
            )
        _check_root(root)  # before any job is enqueued: a bad root fails here, leaving no row behind
        echo(
            escape_controls(
                f"database: {without_password(store.url.url)} ({len(applied)} migration(s) applied)"
            )
        )
        echo(escape_controls(f"audio:    {output_root}"))
        ours: set[str] = set()
        try:
            for job_id, prompt in _enqueue(store, count, seconds, ours):
                echo(f"enqueued  {job_id}  {prompt!r}")
            while (claimed := store.claim_next(worker_id, lease_seconds=60)) is not None:
                if claimed.id not in ours:  # enqueued by someone else meanwhile: hand it back and stop
                    store.fail(
                        claimed.id,
                        "claimed by the demo by mistake; handed back",
                        max_attempts=claimed.attempts + 1,  # always back to pending, never failed
                        worker_id=worker_id,
                    )
                    raise InvalidInput(
                        f"another process enqueued job {claimed.id} while the demo ran; the demo handed it "
                        "back and stopped: run the demo on a database of its own (--database)"
                    )
                store.heartbeat(
                    claimed.id, worker_id, lease_seconds=60
                )  # a real worker beats while the model runs
                audio = _model(
                    claimed.duration_seconds, claimed.sample_rate, claimed.channels, claimed.metadata
                )
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
                made: list[Rendition] = []
                if formats:
                    made = render_generation(store, claimed.id, root=root, formats=formats, profile=profile)
                    made_rows += [
                        [r.storage_key, r.format, r.profile, _db(r.loudness_lufs), _db(r.true_peak_dbtp),
                         r.loudness_status, f"{r.file_size_bytes:,}"]
                        for r in made
                    ]  # fmt: skip
                if collect is not None:
                    collect.append({
                        "generation": done.generation, "storage_url": done.storage_url, "key": done.key,
                        "checksum": done.checksum, "renditions": made,
                    })  # fmt: skip
                if progress is not None:
                    progress(len(rows))
        except BaseException:  # a Ctrl-C, a SIGTERM, a failed export: none of its jobs left queued
            _withdraw(store, ours)
            raise
        echo("")
        headers = ["file", "bpm", "LUFS in", "LUFS out", "dBTP", "gain dB", "limit dB", "limited %",
                   "status", "bytes"]  # fmt: skip
        for line in table(rows, headers):
            echo(line)
        echo("")
        if made_rows:
            headers = ["rendition", "format", "profile", "LUFS", "dBTP", "status", "bytes"]
            for line in table(made_rows, headers):
                echo(line)
            echo("")
        return store.get_database_stats()

"""The README's main job: a generation worker's life on the embedded SQLite default, end to end."""

from __future__ import annotations

from collections.abc import Callable

from .migrate import migrate
from .models import Stats
from .store import Store

PROMPTS = [
    "lofi hip hop at 90 BPM with warm vinyl crackle",
    "ambient drone in D minor, slow evolving pads",
    "upbeat synthwave at 118 BPM",
    "solo piano ballad, gentle and sparse",
    "lofi hip hop at 90 BPM with warm vinyl crackle",
]


def run_demo(
    url: str | None = None,
    *,
    count: int = 5,
    worker_id: str = "demo-worker",
    echo: Callable[[str], None] = print,
) -> Stats:
    """Migrate, enqueue ``count`` generations, claim and complete each as a worker would; return the stats."""
    applied = migrate(url)
    with Store(url) as store:
        echo(f"database: {store.url.url} ({len(applied)} migration(s) applied)")
        for i in range(count):
            prompt = PROMPTS[i % len(PROMPTS)]
            job = store.create_generation(prompt, model_name="musicgen-small", duration_seconds=8.0)
            echo(f"enqueued  {job.id}  {prompt!r}")
        while (claimed := store.claim_next(worker_id, lease_seconds=60)) is not None:
            path = f"{claimed.created_at:%Y/%m/%d}/{claimed.id}.wav"
            done = store.complete_generation(
                claimed.id, file_path=path, file_size_bytes=0, worker_id=worker_id, metadata={"demo": True}
            )
            echo(f"completed {done.id}  attempt {done.attempts}  -> {done.file_path}")
        echo("")
        return store.get_database_stats()

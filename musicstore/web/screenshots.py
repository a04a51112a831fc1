"""Screenshots of the dashboard for docs/dashboard.md: ``python -m musicstore.web.screenshots --out DIR``.

Builds a demo store in a temporary folder (the demo's prompts and synthesised music, a failure with a hostile
prompt, a job in progress, pending jobs of several priorities), serves the dashboard on 127.0.0.1 and saves
a PNG of each page from headless Chromium (Debian's ``chromium`` and ``chromium-driver``, with selenium).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from ..audio import synthesize_music
from ..migrate import migrate
from ..recording import export_generation
from ..store import Store
from ..urls import sqlite_url
from .app import create_app

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> trap beat"
PROMPTS = [
    ("lofi hip hop at 90 BPM with warm vinyl crackle", 90, 0.6),
    ("ambient drone in D minor, slow evolving pads", 70, 0.0),
    ("upbeat synthwave at 118 BPM", 118, 1.2),
    ("solo piano ballad, gentle and sparse", 76, 0.2),
    ("drum and bass at 174 BPM, heavy breaks", 174, 3.0),
]


def build(folder: Path) -> tuple[str, Path, str]:
    """A demo store under ``folder``: its URL, its output root and the id of the generation to show."""
    url, root = sqlite_url(folder / "demo.db"), folder / "audio"
    migrate(url)
    shown = ""
    with Store(url) as store:
        for i in range(12):
            prompt, bpm, drums = PROMPTS[i % len(PROMPTS)]
            model = ("musicgen-small", "musicgen-medium", "musicgen-large")[i % 3]
            store.create_generation(prompt, model_name=model, duration_seconds=6, metadata={"bpm": bpm})
            claimed = store.claim_next(f"gpu-{i % 3}", lease_seconds=300)
            assert claimed is not None
            audio = synthesize_music(6, 32_000, bpm=bpm, channels=2, seed=i, drums=drums)
            export_generation(store, claimed, audio, root=root, generation_time_seconds=4.0 + 3 * (i % 4))
            shown = shown if i != 2 else claimed.id
        store.create_generation(HOSTILE, model_name="musicgen-small", duration_seconds=6)
        failed = store.claim_next("gpu-1", lease_seconds=300)
        assert failed is not None
        store.fail(failed.id, "CUDA out of memory (tried to allocate 2.00 GiB)", retry=False)
        for worker, fraction, stage in (("gpu-0", 0.62, "sampling"), ("gpu-2", 0.15, "encoding prompt")):
            store.create_generation(PROMPTS[0][0], model_name="musicgen-large", duration_seconds=30)
            running = store.claim_next(worker, lease_seconds=300)
            assert running is not None
            store.report_progress(running.id, worker, fraction, stage)
        for n, (prompt, _, _) in enumerate(PROMPTS):
            priority = {0: 10, 1: -5}.get(n, 0)
            store.create_generation(
                prompt, model_name="musicgen-medium", duration_seconds=10, priority=priority
            )
    return url, root, shown


def capture(out: Path) -> list[Path]:
    """Build the demo, serve it, and save each page's screenshot under ``out``; returns the files."""
    from ..testing._browser import LiveServer, browser_missing, start_browser

    reason = browser_missing()
    if reason:
        raise SystemExit(f"musicstore.web.screenshots: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        url, root, shown = build(Path(tmp))
        with Store(url) as store:
            server = LiveServer(create_app(store, root=root))
            driver: Any = start_browser(width=1280, height=1000)
            try:
                for name, path, ready in (
                    ("overview", "/", "chart-hours"),
                    ("generations", "/generations", None),
                    ("generation", f"/generations/{shown}", "waveform"),
                    ("prompts", "/prompts", None),
                    ("workers", "/workers", None),
                ):
                    driver.get(server.url + path)
                    deadline = time.monotonic() + 10
                    while ready and time.monotonic() < deadline:
                        state = driver.execute_script(
                            f"return document.getElementById('{ready}').dataset.state"
                        )
                        if state == "drawn":
                            break
                        time.sleep(0.05)
                    target = out / f"dashboard-{name}.png"
                    driver.save_screenshot(str(target))
                    saved.append(target)
            finally:
                driver.quit()
                server.stop()
    return saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder of the PNGs (docs/img)")
    args = parser.parse_args(argv)
    for path in capture(args.out):
        print(path)


if __name__ == "__main__":
    main()

"""A full disk says so: exports into a real full filesystem name the cause, in the error and in the row.

Two real mechanisms, each run in a child process (``python -m tests.test_full_disk``):

- ENOSPC: the output root is a tmpfs too small for the clip, mounted in a private mount namespace
  (``unshare --mount``, or ``unshare --user --map-root-user --mount`` without root), so it vanishes with the
  child and nothing stays mounted if a test dies;
- EFBIG: the child's file size limit (``RLIMIT_FSIZE``) is below the clip's size, with ``SIGXFSZ`` ignored,
  as ``ulimit -f`` does.

Each child runs every entry point (``export_audio``, ``export_batch``, ``export_generation``,
``export_batch_generations``) for WAV PCM_16, PCM_24, FLOAT and FLAC PCM_16, PCM_24, and reports the error,
the rows and what is left under the root. Outside CI the ENOSPC half skips when no tmpfs can be mounted; on
CI (``CI=true``) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore.recording import OnError

REPO = Path(__file__).resolve().parent.parent
FORMATS = [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("flac", "PCM_24")]
ENTRIES = ["export_audio", "export_batch", "export_generation", "export_batch_generations"]
RATE = 32_000
TMPFS_BYTES = 256 * 1024
"""The tmpfs: smaller than any clip below (5 s of noise: ≥ 530 kB as FLAC PCM_16, 640 kB as WAV PCM_16)."""
FSIZE_LIMIT = 512 * 1024
"""RLIMIT_FSIZE: above the SQLite database and its WAL (checkpointed between cases), below any clip (8 s of
noise: ≥ 800 kB as FLAC PCM_16)."""
CAUSES = {
    "enospc": "No space left on device (ENOSPC)",
    "efbig": "File too large (EFBIG)",
}


def _noise(seconds: float, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Stereo white noise: incompressible, so FLAC is as large as the tests need."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, int(seconds * RATE))) * 0.1).astype(np.float32)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def _case(
    store: Any, base: Path, entry: str, *, ext: str, subtype: str, seconds: float, on_error: OnError
) -> dict[str, Any]:
    """Run one entry point into ``base``; what it raised, the rows it touched, and the files left."""
    from musicstore.audio import ExportOptions, export_audio, export_batch
    from musicstore.recording import export_batch_generations, export_generation

    root = base / f"{entry}-{ext}-{subtype}-{on_error}"
    root.mkdir()
    options = ExportOptions(subtype=subtype)
    errors: list[BaseException] = []
    ids: list[str] = []
    if entry in ("export_generation", "export_batch_generations"):
        count = 1 if entry == "export_generation" else 2
        for n in range(count):
            store.create_generation(
                f"full disk {entry} {ext} {subtype} {n}", model_name="m", duration_seconds=seconds,
                sample_rate=RATE, channels=2,
            )  # fmt: skip
        claimed = store.claim_batch("w", count)
        ids = [g.id for g in claimed]
    try:
        if entry == "export_audio":
            export_audio(_noise(seconds, 1), RATE, root / f"out.{ext}", options)
        elif entry == "export_batch":
            batch = np.stack([_noise(seconds, 1), _noise(seconds, 2)])
            export_batch(batch, RATE, [root / f"a.{ext}", root / f"b.{ext}"], options)
        elif entry == "export_generation":
            export_generation(
                store, claimed[0], _noise(seconds, 1), root=root, ext=ext, options=options, on_error=on_error
            )
        else:
            batch = np.stack([_noise(seconds, 1), _noise(seconds, 2)])
            outcomes = export_batch_generations(
                store, claimed, batch, root=root, ext=ext, options=options, on_error=on_error
            )
            errors += [o for o in outcomes if isinstance(o, BaseException)]
            if len(errors) != len(outcomes):
                errors.append(AssertionError(f"some items were written: {outcomes!r}"))
    except Exception as exc:
        errors.append(exc)
    if not errors:
        errors.append(AssertionError("the export succeeded"))
    rows = [store.get_generation(gid) for gid in ids]
    return {
        "case": f"{entry} {ext} {subtype} on_error={on_error}",
        "errors": [f"{type(e).__name__}: {e}" for e in errors],
        "rows": [(row.status.value, row.error_message) for row in rows],
        "left": _files(root),
    }


def child(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The child's work: make the filesystem full (tmpfs) or the limit low (RLIMIT_FSIZE), run every case."""
    import resource
    import signal

    from musicstore import Store

    base = Path(spec["base"])
    if spec["mechanism"] == "enospc":
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(base)],
            check=True, capture_output=True,
        )  # fmt: skip
        seconds = 5.0
    else:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, hard))
        seconds = 8.0
    results = []
    database = spec["url"].removeprefix("sqlite:///") if spec["url"].startswith("sqlite:") else None
    with Store(spec["url"]) as store:
        for entry in ENTRIES:
            for ext, subtype in FORMATS:
                on_errors: list[OnError] = ["fail", "retry"] if entry == "export_generation" else ["fail"]
                for on_error in on_errors:
                    results.append(
                        _case(
                            store, base, entry, ext=ext, subtype=subtype, seconds=seconds, on_error=on_error
                        )
                    )
                    if database is not None:  # keep the WAL under the size limit
                        with sqlite3.connect(database) as conn:
                            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return results


def _tmpfs_launcher(tmp_path: Path) -> list[str] | str:
    """The ``unshare`` prefix under which a tmpfs can be mounted here, or why none can."""
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    probe = tmp_path / "probe"
    probe.mkdir()
    tried = []
    for prefix in (["unshare", "--mount", "--"], ["unshare", "--user", "--map-root-user", "--mount", "--"]):
        cmd = [*prefix, "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(probe)]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if result.returncode == 0:
            return prefix
        tried.append(f"{' '.join(prefix[:-1])}: {result.stderr.strip()}")
    return "cannot mount a tmpfs in a private mount namespace (" + "; ".join(tried) + ")"


def _run_child(prefix: list[str], spec: dict[str, Any]) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [*prefix, sys.executable, "-m", "tests.test_full_disk", json.dumps(spec)]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "System error" not in result.stderr, result.stderr[-4000:]
    outcomes: list[dict[str, Any]] = json.loads(result.stdout.splitlines()[-1])
    return outcomes


def _check(outcomes: list[dict[str, Any]], cause: str) -> None:
    assert len(outcomes) == len(FORMATS) * (len(ENTRIES) + 1)
    for outcome in outcomes:
        case = outcome["case"]
        assert outcome["errors"], case
        for error in outcome["errors"]:
            assert error.startswith("StorageError: ") and cause in error, (case, error)
            assert "System error" not in error, (case, error)
        expected = "pending" if "on_error=retry" in case else "failed"
        for status, message in outcome["rows"]:
            assert status == expected, (case, status)
            assert message is not None and cause in message, (case, message)
        assert outcome["left"] == [], (case, outcome["left"])  # no temp file, no partial final file


def test_a_full_filesystem_names_enospc(db_url: str, tmp_path: Path) -> None:
    launcher = _tmpfs_launcher(tmp_path)
    if isinstance(launcher, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"the full-disk test must run on CI: {launcher}")
        pytest.skip(launcher)
    base = tmp_path / "full"
    base.mkdir()
    _check(_run_child(launcher, {"mechanism": "enospc", "base": str(base), "url": db_url}), CAUSES["enospc"])


def test_a_file_over_the_size_limit_names_efbig(db_url: str, tmp_path: Path) -> None:
    base = tmp_path / "limited"
    base.mkdir()
    _check(_run_child([], {"mechanism": "efbig", "base": str(base), "url": db_url}), CAUSES["efbig"])


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))

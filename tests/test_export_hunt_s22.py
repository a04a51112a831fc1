"""Export path and recording: what the s22 hunt found (each test failed before its fix), and the true-peak
property on adversarial signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from musicstore import Generation, InvalidAudio, InvalidInput, Status, Store
from musicstore.audio import analyze_file, export_batch, synthesize_music
from musicstore.recording import export_batch_generations, export_generation
from tests.conftest import new_job

RATE = 16_000


def claimed(store: Store) -> Generation:
    job = new_job(store, duration_seconds=1.0, sample_rate=RATE)
    got = store.claim_next("gpu-0", lease_seconds=60)
    assert got is not None and got.id == job.id
    return got


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def float_audio(kind: str) -> Any:
    audio = synthesize_music(1.0, RATE, seed=1)
    if kind == "float16":
        return audio.astype(np.float16)
    if kind == "tensor":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(audio).to(torch.bfloat16)
    return audio


@pytest.mark.parametrize("kind", ["float32", "float16", "tensor"])
def test_scale_for_float_audio_is_a_caller_mistake_as_in_a_batch(
    store: Store, tmp_path: Path, kind: str
) -> None:
    """``scale=`` applies to integer audio only: given with float audio it is a caller mistake (a worker
    configured for a model's int16 output), as the batch treats it: InvalidInput, the rows untouched. A single
    export failed the row instead (for good with the default ``on_error="fail"``), so such a worker failed
    every generation it claimed, where ``export_batch_generations`` raised before touching any row."""
    root = tmp_path / "audio"
    job = claimed(store)
    with pytest.raises(InvalidInput, match="integer audio only"):
        export_generation(store, job, float_audio(kind), root=root, scale=32_768)
    row = store.get_generation(job.id)
    assert row is not None and row.status is Status.PROCESSING and row.error_message is None
    batch = [job, claimed(store)]
    audio = np.stack([synthesize_music(1.0, RATE, seed=s) for s in range(2)])
    with pytest.raises(InvalidInput, match="integer audio only"):
        export_batch_generations(store, batch, audio, root=root, scale=32_768)
    assert [store.get_generation(g.id).status for g in batch] == [Status.PROCESSING] * 2  # type: ignore[union-attr]
    assert files_under(root) == []
    pcm = (synthesize_music(1.0, RATE, seed=1) * 20_000).astype(np.int16)  # what scale= is for still records
    done = export_generation(store, job, pcm, root=root, scale=32_768)
    assert done.generation.status is Status.COMPLETED


@pytest.mark.parametrize("unordered", [set, frozenset, lambda paths: dict.fromkeys(paths).keys()])
def test_export_batch_refuses_paths_without_an_order(tmp_path: Path, unordered: Any) -> None:
    """Item ``i`` of a batch goes to ``paths[i]``; a set of paths has no order (a str's hash, and so a set's
    iteration order, changes from one process to the next), yet it was taken as given: each item was written
    to whichever path the set yielded at its place, a clip under another generation's name."""
    batch = np.stack([synthesize_music(0.5, RATE, seed=s) for s in range(3)])
    paths = [tmp_path / f"{name}.wav" for name in ("a", "b", "c")]
    with pytest.raises(InvalidInput, match="no order"):
        export_batch(batch, RATE, unordered(paths))
    assert files_under(tmp_path) == []
    assert [r.path for r in export_batch(batch, RATE, tuple(paths))] == paths  # a tuple, a list: in order


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_analyze_file_names_the_file_that_holds_non_finite_samples(tmp_path: Path, bad: float) -> None:
    """A FLOAT file holding a NaN or an infinity (written by another tool) was refused with the message made
    for model output: "audio has 1 non-finite values ...; Check the model output", naming neither the file
    nor its being a file (``file_peaks`` of the same file names it)."""
    path = tmp_path / "float.wav"
    frames = (np.random.default_rng(0).standard_normal((1_000, 2)) * 0.1).astype(np.float32)
    frames[17, 1] = bad
    sf.write(path, frames, RATE, subtype="FLOAT")
    with pytest.raises(InvalidAudio, match="holds NaN or infinite samples") as info:
        analyze_file(path)
    message = str(info.value)
    assert str(path) in message and "channel 1, sample 17" in message and "model output" not in message

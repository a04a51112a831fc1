"""Export and recording: what an acceptance-style hunt found (each test failed before its fix)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore.audio import (
    ExportOptions,
    as_audio,
    as_audio_batch,
    export_audio,
    export_batch,
    integrated_loudness,
)
from musicstore.audio.loudness import ABSOLUTE_GATE_LUFS
from musicstore.errors import InvalidAudio, InvalidInput, StorageError
from tests.reference_meter import reference_true_peak_db

RATE = 32_000


def clip(channels: int = 2, seconds: float = 0.5) -> np.ndarray[Any, np.dtype[np.float32]]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((channels, round(seconds * RATE))) * 0.1).astype(np.float32)


@pytest.mark.parametrize("value", [np.array(0.5, dtype=np.float32), np.array(3, dtype=np.int16)])
def test_a_zero_dimensional_array_is_the_wrong_rank(tmp_path: Path, value: Any) -> None:
    """np.ascontiguousarray made a 0-d array 1-d, so a single number was exported as a 1-sample clip."""
    scale = 32_768 if value.dtype.kind == "i" else None
    with pytest.raises(InvalidAudio, match="0 dimensions"):
        export_audio(value, RATE, tmp_path / "a.wav", scale=scale)
    with pytest.raises(InvalidAudio, match="0 dimensions"):
        as_audio_batch(value, scale=scale)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("scale", ["32768", 1j, True, np.True_, [32_768]])
def test_a_scale_that_is_not_a_real_number_is_invalid_input(tmp_path: Path, scale: Any) -> None:
    """A str or complex scale raised a bare TypeError; True was taken as 1.0."""
    with pytest.raises(InvalidInput, match="scale"):
        export_audio(np.zeros((2, 100), dtype=np.int16), RATE, tmp_path / "a.wav", scale=scale)
    assert not any(tmp_path.iterdir())


def test_numpy_integer_and_float_scales_still_work() -> None:
    ints = np.full((1, 10), 16_384, dtype=np.int16)
    scales: tuple[Any, ...] = (32_768, 32_768.0, np.int32(32_768), np.float32(32_768))
    for scale in scales:
        np.testing.assert_array_equal(as_audio(ints, scale=scale), np.full((1, 10), 0.5, dtype=np.float32))


class TestTensors:
    """torch tensors (skipped without torch)."""

    torch: Any = None

    @pytest.fixture(autouse=True)
    def _torch(self) -> None:
        type(self).torch = pytest.importorskip("torch")

    def test_a_zero_dimensional_tensor_is_the_wrong_rank(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidAudio, match="0 dimensions"):
            export_audio(self.torch.tensor(0.5), RATE, tmp_path / "a.wav")
        assert not any(tmp_path.iterdir())

    def test_a_view_with_its_negative_bit_set_is_exported(self, tmp_path: Path) -> None:
        """``z.conj().imag`` (a real float view with the negative bit) raised a bare RuntimeError."""
        torch = self.torch
        z = torch.complex(torch.from_numpy(clip()), torch.from_numpy(clip()[::-1].copy()))
        view = z.conj().imag
        assert view.is_neg()
        np.testing.assert_array_equal(as_audio(view), -clip()[::-1])
        assert export_audio(view, RATE, tmp_path / "a.wav").frames == view.shape[1]

    def test_sparse_and_meta_tensors_are_invalid_audio(self, tmp_path: Path) -> None:
        torch = self.torch
        for tensor in (torch.from_numpy(clip()).to_sparse(), torch.empty(2, 100, device="meta")):
            with pytest.raises(InvalidAudio, match="dense tensor"):
                export_audio(tensor, RATE, tmp_path / "a.wav")
        assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("error", [StorageError, KeyboardInterrupt])
def test_a_failed_tagging_leaves_no_staged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    """The master was staged, then its tagging failed (a full disk: the tagged copy needs the space again)
    or was interrupted: the hidden staging file was left in the date folder."""
    from musicstore import Status, Store, recording
    from musicstore.recording import placing

    def no_space(*_args: object) -> int:
        raise error("writing the tagged copy failed: No space left on device (ENOSPC)")

    monkeypatch.setattr(placing, "tag_master", no_space)  # read where the master is placed
    root = tmp_path / "audio"
    with Store(f"sqlite:///{tmp_path / 'x.db'}", migrate=True) as store:
        store.create_generation("a song", model_name="m", duration_seconds=0.5)
        claimed = store.claim_next("w")
        assert claimed is not None
        with pytest.raises(error, match="tagged copy"):
            recording.export_generation(store, claimed, clip(), root=root, tags=True)
        row = store.get_generation(claimed.id)
        assert row is not None
        # failed per on_error; an interrupt leaves it processing (its lease expires)
        assert row.status is (Status.FAILED if error is StorageError else Status.PROCESSING)
    assert [p for p in root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("path", [5, None, b"/tmp/a.wav", "a\x00b.wav", ["a.wav"]])
def test_a_path_of_the_wrong_type_is_invalid_input(tmp_path: Path, path: Any) -> None:
    """An int, None, bytes or a NUL raised a bare TypeError/ValueError."""
    with pytest.raises(InvalidInput, match="path"):
        export_audio(clip(), RATE, path)
    with pytest.raises(InvalidInput, match="path"):
        export_batch(clip()[None], RATE, [path])


@pytest.mark.parametrize("options", [{"target_lufs": -14.0}, "PCM_24", -14.0])
def test_options_that_are_not_export_options_are_invalid_input(tmp_path: Path, options: Any) -> None:
    """A dict of options raised AttributeError ('dict' object has no attribute 'subtype')."""
    with pytest.raises(InvalidInput, match="options"):
        export_audio(clip(), RATE, tmp_path / "a.wav", options)
    with pytest.raises(InvalidInput, match="options"):
        export_batch(clip()[None], RATE, [tmp_path / "b.wav"], options)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("workers", [-1, 0, "2", 2.5, True])
def test_export_batch_workers_of_the_wrong_type_or_range_are_invalid_input(
    tmp_path: Path, workers: Any
) -> None:
    """-1 raised ValueError from the thread pool, "2" a TypeError, after the checks of the audio."""
    with pytest.raises(InvalidInput, match="workers"):
        export_batch(
            np.stack([clip(), clip()]), RATE, [tmp_path / "a.wav", tmp_path / "b.wav"], workers=workers
        )
    assert not any(tmp_path.iterdir())


def test_export_batch_refuses_one_file_spelled_two_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two items written to one file (``x/../a.wav`` and ``a.wav``, a relative and an absolute spelling, a
    symlinked folder) both reported success, and one result described a file that held the other item."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    spellings: list[tuple[str | Path, Path]] = [
        (tmp_path / "a.wav", tmp_path / "x" / ".." / "a.wav"),
        ("b.wav", tmp_path / "b.wav"),
        (tmp_path / "real" / "c.flac", tmp_path / "link" / "c.flac"),
    ]
    for first, second in spellings:
        with pytest.raises(InvalidInput, match="distinct"):
            export_batch(np.stack([clip(), clip() * 0.5]), RATE, [first, second])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"] and not any(
        (tmp_path / "real").iterdir()
    )
    results = export_batch(np.stack([clip(), clip()]), RATE, ["d.wav", Path("e.wav")], workers=2)
    assert [r.path.name for r in results] == ["d.wav", "e.wav"]


@pytest.mark.parametrize(("fmt", "subtype"), [("wav", "PCM_16"), ("wav", "PCM_24"), ("flac", "PCM_16")])
def test_digital_silence_is_written_as_zeros(tmp_path: Path, fmt: str, subtype: str) -> None:
    """Silence is written unchanged: PCM_16's TPDF dither had turned it into ±1 LSB noise (-90 dBFS) while
    the result reported a sample peak of -inf."""
    silence = np.zeros((2, RATE), dtype=np.float32)
    result = export_audio(silence, RATE, tmp_path / f"s.{fmt}", ExportOptions(subtype=subtype))
    data, _ = sf.read(result.path, dtype="int32")
    assert result.status == "silent" and result.sample_peak == float("-inf") and not data.any()
    levels = (1e-40, 1e-20, 0.49 / 32_768) if subtype == "PCM_16" else (1e-40, 1e-20)
    for level in levels:  # under half a 16-bit step: rounds to zeros undithered
        faint = np.full((2, RATE), level, dtype=np.float32)
        result = export_audio(faint, RATE, tmp_path / f"f.{fmt}", ExportOptions(subtype=subtype))
        data, _ = sf.read(result.path, dtype="int32")
        assert result.status == "silent" and not data.any(), level


def test_a_quiet_clip_keeps_its_dither(tmp_path: Path) -> None:
    """Only digital silence skips the dither: a clip with any nonzero sample is dithered as before."""
    audio = np.zeros((1, RATE), dtype=np.float32)
    audio[0, 100] = 1e-3
    path = tmp_path / "q.wav"
    export_audio(audio, RATE, path, ExportOptions(normalize=False, dither_seed=3))
    data, _ = sf.read(path, dtype="int16")
    assert np.count_nonzero(data) > RATE // 8  # |dither| > 0.5 LSB a quarter of the time


@given(
    level=st.floats(1.05, 4.0),
    seconds=st.floats(0.05, 1.0),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_32"]),
    fmt=st.sampled_from(["wav", "flac"]),
    status=st.sampled_from(["as_is"]),  # a too quiet clip over the ceiling is turned down (s24): not clipped
)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_figures_of_a_clipped_file_are_those_of_the_file(
    tmp_path: Path, *, level: float, seconds: float, subtype: str, fmt: str, status: str
) -> None:
    """A clip written unchanged (normalize=False; a too quiet one, until session 24, which now turns it
    down under the ceiling: tests/test_lead_fixes_s24.py) with samples beyond full scale is clipped in a
    PCM file: the result reported the sample peak, true peak and loudness of the samples given (+1.6 dBFS
    for a file that holds 0 dBFS at most)."""
    if fmt == "flac" and subtype == "PCM_32":
        subtype = "PCM_24"
    n = max(1, round(seconds * RATE))
    rng = np.random.default_rng(n)
    audio = (np.sin(np.arange(n) * 0.05) * 0.3).astype(np.float32)[None, :]  # about -14 LUFS
    audio[0, rng.integers(n, size=5)] = np.float32(level)  # spikes beyond full scale
    options = (
        ExportOptions(normalize=False, subtype=subtype)
        if status == "as_is"
        else ExportOptions(target_lufs=-1.0, max_gain_db=0.0, subtype=subtype)
    )
    path = tmp_path / f"c.{fmt}"
    result = export_audio(audio, RATE, path, options)
    assert result.status == status and result.clipped_samples > 0
    data, _ = sf.read(path, dtype="float64", always_2d=True)
    file_peak = 20 * np.log10(np.abs(data).max())
    assert abs(result.sample_peak - file_peak) < 0.01
    assert abs(result.true_peak_after - reference_true_peak_db(data.T)) < 0.1
    assert result.loudness_after == pytest.approx(
        integrated_loudness(data.T.astype(np.float32), RATE).lufs, abs=0.02
    )


def test_an_interrupted_export_batch_keeps_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while export_batch waited for its items: the pool finished every item and all their files
    stayed (a SIGINT 0.4 s into a batch of 8 left all 8)."""
    from musicstore.audio import export as export_module

    waited: list[object] = []

    def interrupted(future: Any) -> object:
        future.result()  # the first item is written, then the wait is interrupted
        waited.append(future)
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "_outcome", interrupted)
    paths = [tmp_path / f"{i}.wav" for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        export_batch(np.stack([clip()] * 4), RATE, paths, workers=2)
    assert len(waited) == 1 and not any(tmp_path.iterdir())


def test_export_options_take_numpy_numbers_as_floats() -> None:
    """np.float32(-14.0) was refused ("must be a number, got float32") where np.float64 passed."""
    given_numbers: dict[str, Any] = {
        "target_lufs": np.float32(-14.0),
        "ceiling_dbtp": np.int64(-2),
        "tolerance_lu": np.float16(0.5),
    }
    options = ExportOptions(**given_numbers)
    assert (options.target_lufs, options.ceiling_dbtp, options.tolerance_lu) == (-14.0, -2.0, 0.5)
    assert all(type(v) is float for v in (options.target_lufs, options.ceiling_dbtp, options.max_gain_db))
    bad_values: list[Any] = [np.True_, "1", None, 1j]
    for bad in bad_values:
        with pytest.raises(InvalidInput, match="must be a number"):
            ExportOptions(max_limiting_db=bad)


def test_export_batch_generations_refuses_items_that_are_not_generations(tmp_path: Path) -> None:
    """A list of None or dicts raised a bare AttributeError ('NoneType' object has no attribute 'id')."""
    from musicstore import Status, Store
    from musicstore.recording import export_batch_generations

    with Store(f"sqlite:///{tmp_path / 'x.db'}", migrate=True) as store:
        store.create_generation("a song", model_name="m", duration_seconds=0.5)
        claimed = store.claim_next("w")
        assert claimed is not None
        bad_items: list[list[Any]] = [[None], [{"id": claimed.id}], [claimed.id]]
        for generations in bad_items:
            with pytest.raises(InvalidInput, match="Generation"):
                export_batch_generations(store, generations, clip()[None], root=tmp_path / "audio")
        assert store.get_generation(claimed.id).status is Status.PROCESSING  # type: ignore[union-attr]
    assert not (tmp_path / "audio").exists()


@pytest.mark.parametrize("path", [5, None, b"/tmp/a.wav", ["a.wav"]])
def test_analyze_file_refuses_a_path_of_the_wrong_type(path: Any) -> None:
    """An int or None raised a bare TypeError."""
    from musicstore.audio import analyze_file

    with pytest.raises(InvalidInput, match="path"):
        analyze_file(path)


@pytest.mark.parametrize(
    "arguments",
    [
        {"root": 5},
        {"root": None},
        {"root": b"/srv/audio"},
        {"root": "/srv/audio\x00"},
        {"ext": None},
        {"ext": 3},
        {"when": "2026-01-01"},
        {"when": date(2026, 1, 1)},
    ],
)
def test_layout_path_refuses_arguments_of_the_wrong_type(arguments: dict[str, Any]) -> None:
    """These raised bare TypeError, ValueError or AttributeError (no attribute 'lower', 'tzinfo')."""
    from musicstore.audio import layout_path

    given: dict[str, Any] = {"root": "/srv/audio", "generation_id": "a1", **arguments}
    with pytest.raises(InvalidInput):
        layout_path(**given)


@pytest.mark.parametrize(
    "arguments",
    [
        {"seconds": -1.0},
        {"seconds": float("nan")},
        {"seconds": 0.0},
        {"seconds": 1e-9},
        {"seconds": "1"},
        {"seconds": 1e12},
        {"channels": 0},
        {"channels": 9},
        {"channels": 2.0},
        {"bpm": 0},
        {"bpm": float("nan")},
        {"seed": -1},
        {"drums": -1.0},
    ],
)
def test_synthesize_music_refuses_arguments_out_of_range(arguments: dict[str, Any]) -> None:
    """These raised bare ValueError, IndexError, ZeroDivisionError, TypeError or MemoryError (227 PiB)."""
    from musicstore.audio import synthesize_music

    given: dict[str, Any] = {"seconds": 0.5, "sample_rate": RATE, **arguments}
    with pytest.raises(InvalidInput):
        synthesize_music(**given)


def test_synthesize_music_and_click_track_take_numpy_numbers() -> None:
    from musicstore.audio import click_track, synthesize_music

    plain = synthesize_music(0.5, RATE, bpm=100.0, channels=2, seed=3, drums=0.5)
    numbers: dict[str, Any] = {"channels": np.int64(2), "seed": np.int64(3), "drums": np.float64(0.5)}
    numpy_args = synthesize_music(np.float64(0.5), RATE, bpm=np.float64(100.0), **numbers)
    np.testing.assert_array_equal(plain, numpy_args)
    assert click_track(np.float64(96.0), 1.0, 16_000).shape == (1, 16_000)
    bad: list[dict[str, Any]] = [{"bpm": 0.0}, {"seconds": -2.0}, {"amplitude": float("inf")}]
    for arguments in bad:
        with pytest.raises(InvalidInput):
            click_track(**{"bpm": 96.0, "seconds": 1.0, "sample_rate": 16_000, **arguments})


def test_integrated_loudness_checks_its_input_as_an_export_does() -> None:
    """The public meter took a (S, C) array as 32,000 channels (27.9 LUFS for noise at -14), NaN as -inf, and
    raised IndexError for (S,) and ZeroDivisionError for a rate of 0."""
    noise = (np.random.default_rng(0).standard_normal((2, RATE)) * 0.1).astype(np.float32)
    expected = integrated_loudness(noise, RATE).lufs
    assert expected == pytest.approx(-14.01, abs=0.01)
    assert integrated_loudness(noise.astype(np.float64), RATE).lufs == expected
    assert integrated_loudness(noise[0], RATE).lufs == integrated_loudness(noise[:1], RATE).lufs  # mono
    bad: list[tuple[Any, Any, type[Exception]]] = [
        (np.ascontiguousarray(noise.T), RATE, InvalidAudio),  # (S, C): not guessed
        (np.full((1, 100), np.nan, dtype=np.float32), RATE, InvalidAudio),
        (np.zeros((2, 0), dtype=np.float32), RATE, InvalidAudio),
        ([[0.1] * 100], RATE, InvalidAudio),
        (noise, 0, InvalidInput),
        (noise, 32_000.0, InvalidInput),
    ]
    for audio, rate, error in bad:
        with pytest.raises(error):
            integrated_loudness(audio, rate)


def test_profile_export_options_refuses_unknown_or_fixed_overrides() -> None:
    """An unknown override, or the target the profile sets, raised a bare TypeError."""
    from musicstore.audio import get_profile

    profile = get_profile("streaming")
    assert profile.export_options(subtype="PCM_24", limiter=False).subtype == "PCM_24"
    bad: list[dict[str, Any]] = [{"bogus": 1}, {"target_lufs": -9.0}, {"ceiling_dbtp": -2.0}]
    for overrides in bad:
        with pytest.raises(InvalidInput, match="export_options"):
            profile.export_options(**overrides)


LEVELS = ["target_lufs", "ceiling_dbtp", "max_limiting_db", "max_gain_db", "tolerance_lu"]


@pytest.mark.parametrize("name", LEVELS)
def test_an_option_beyond_any_float_is_out_of_range(name: str) -> None:
    """An int too large for a float (hypothesis found 10**400) is InvalidInput, not an OverflowError."""
    with pytest.raises(InvalidInput, match=f"{name} is out of range"):
        huge: dict[str, Any] = {name: 10**400}
        ExportOptions(**huge)


@pytest.mark.parametrize("meter", ["true_peak", "annex2_true_peak"])
@pytest.mark.parametrize(
    "bad", [[0.1, 0.2], np.array([np.nan, 0.1], dtype=np.float32), np.zeros((2, 0), dtype=np.float32), "x"]
)
def test_the_public_true_peak_meters_check_their_clip(meter: str, bad: Any) -> None:
    """A list, NaN, an empty clip or a string: InvalidAudio, as for an export (bare AttributeError,
    ValueError or a NaN reading before); a mono (S,) clip reads as one channel."""
    from musicstore.audio import truepeak

    measure = getattr(truepeak, meter)
    with pytest.raises(InvalidAudio):
        measure(bad)
    mono = (0.5 * np.sin(np.arange(4_800) / 3.0)).astype(np.float32)
    assert measure(mono) == measure(mono[None, :]) >= 0.5 * 0.99


@pytest.mark.parametrize(("fmt", "ext"), [("flac", "flac"), ("wav", "wav")])
def test_a_lossless_rendition_of_silence_is_written_as_zeros(tmp_path: Path, fmt: str, ext: str) -> None:
    """A FLAC or WAV (PCM_16) rendition of digital silence decoded as TPDF dither noise (-84 dBTP) while its
    status said silent: the export's rule (a2a395e) was not applied to a rendition's encode."""
    pytest.importorskip("soxr")
    from musicstore.audio import RenditionSpec, render_audio

    for level in (0.0, 1e-20, 0.49 / 32_768):
        silence = np.full((2, RATE), level, dtype=np.float32)
        result = render_audio(silence, RATE, tmp_path / f"s.{ext}", RenditionSpec(fmt), "streaming")
        data, _ = sf.read(result.path, dtype="int32")
        assert result.status == "silent" and result.true_peak == float("-inf") and not data.any(), level


def test_an_export_takes_the_umask_set_after_import(tmp_path: Path) -> None:
    """The file mode was 0o666 less the umask read when musicstore was imported: a service that set
    umask 0o077 afterwards still got world-readable files (0o644)."""
    import os

    previous = os.umask(0o077)
    try:
        private = export_audio(clip(), RATE, tmp_path / "private.wav").path
        os.umask(0o002)
        shared = export_audio(clip(), RATE, tmp_path / "shared.flac").path
    finally:
        os.umask(previous)
    assert private.stat().st_mode & 0o777 == 0o600
    assert shared.stat().st_mode & 0o777 == 0o664


@pytest.mark.parametrize(("name", "subtype"), [("a.wav", "PCM_16"), ("a.wav", "FLOAT"), ("a.flac", "PCM_24")])
def test_a_ctrl_c_in_libsndfile_s_write_callback_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, subtype: str
) -> None:
    """A SIGINT lands in soundfile's write callback (the Python code a long encode runs most), where cffi
    cannot pass it through C: it was printed and dropped, and the export raised a bare AssertionError
    (WAV, on the short write) or went on and reported success (FLAC), the Ctrl-C lost."""
    from musicstore.audio import files

    write, calls = files._Sink.write, [0]

    def interrupted(self: Any, data: Any, /) -> int:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return write(self, data)

    monkeypatch.setattr(files._Sink, "write", interrupted)
    (tmp_path / name).write_bytes(b"earlier")
    with pytest.raises(KeyboardInterrupt):
        export_audio(clip(seconds=3.0), RATE, tmp_path / name, ExportOptions(subtype=subtype))
    assert [p.name for p in tmp_path.iterdir()] == [name] and (tmp_path / name).read_bytes() == b"earlier"


def test_a_ctrl_c_in_a_rendition_s_encode_callback_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same in a rendition's in-memory encode: a bare AssertionError from soundfile, the Ctrl-C lost."""
    import io
    from types import SimpleNamespace

    pytest.importorskip("soxr")
    from musicstore.audio import RenditionSpec, codecs, render_audio

    class Interrupted(io.BytesIO):
        def write(self, data: Any, /) -> int:
            if self.tell() > 10_000:
                raise KeyboardInterrupt
            return super().write(data)

    monkeypatch.setattr(codecs, "io", SimpleNamespace(BytesIO=Interrupted))
    with pytest.raises(KeyboardInterrupt):
        render_audio(clip(seconds=2.0), RATE, tmp_path / "a.flac", RenditionSpec("flac"), "streaming")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("fmt", "subtype"), [("wav", "PCM_16"), ("wav", "PCM_24"), ("flac", "PCM_16")])
@pytest.mark.parametrize("level", [1e-30, 1e-9, 0.49 / 2**23])
def test_silence_written_as_zeros_reports_the_zeros(
    tmp_path: Path, fmt: str, subtype: str, level: float
) -> None:
    """A clip under half a step of its subtype is written as zeros (a94f260), but the result reported the
    sample and true peak of the samples given (-166.5 dBFS / -166.2 dBTP at 1e-9), not the file's -inf."""
    rng = np.random.default_rng(1)
    faint = (rng.uniform(-1.0, 1.0, (2, RATE)) * level).astype(np.float32)
    for options in (ExportOptions(subtype=subtype), ExportOptions(subtype=subtype, normalize=False)):
        result = export_audio(faint, RATE, tmp_path / f"f.{fmt}", options)
        data, _ = sf.read(result.path, dtype="int32")
        assert not data.any() and result.status in ("silent", "as_is")
        assert result.sample_peak == result.true_peak_after == float("-inf")
    kept = export_audio(faint, RATE, tmp_path / "kept.wav", ExportOptions(subtype="FLOAT"))
    assert kept.sample_peak == pytest.approx(20 * np.log10(np.abs(faint).max()), abs=1e-3)


def test_nested_and_quantized_tensors_are_invalid_audio(tmp_path: Path) -> None:
    """A nested tensor (strided layout) and a quantized one raised bare RuntimeErrors from torch."""
    torch = pytest.importorskip("torch")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: nested tensors are a prototype, quantized ones deprecated
        nested = torch.nested.nested_tensor([torch.zeros(RATE), torch.zeros(RATE + 1)])
        quantized = torch.quantize_per_tensor(torch.zeros(2, RATE), 0.1, 0, torch.qint8)
    for audio in (nested, quantized):
        with pytest.raises(InvalidAudio):
            export_audio(audio, RATE, tmp_path / "a.wav")
    assert not list(tmp_path.iterdir())


def test_loudness_profile_takes_numpy_numbers_and_refuses_huge_ints() -> None:
    """LoudnessProfile refused np.float32(-14.0) and np.int64(-14) ('must be a finite number') where
    ExportOptions takes them (632e9bd), and 10**400 raised a bare OverflowError."""
    import json

    from musicstore.audio import LoudnessProfile

    numbers: list[Any] = [np.float32(-14.0), np.int64(-1), np.float32(0.5)]
    profile = LoudnessProfile(*numbers)
    assert json.dumps(profile.as_metadata()) and profile.export_options().target_lufs == -14.0
    assert (profile.target_lufs, profile.ceiling_dbtp, profile.tolerance_lu) == (-14.0, -1.0, 0.5)
    assert LoudnessProfile(-14).as_metadata()["target_lufs"] == -14  # a plain number kept as given
    bad_numbers: list[Any] = [10**400, -(10**400), np.bool_(True), np.float64("nan")]
    for bad in bad_numbers:
        with pytest.raises(InvalidInput, match="finite number"):
            LoudnessProfile(bad)


def test_a_rendition_spec_of_numpy_numbers_gives_json_ready_metadata(tmp_path: Path) -> None:
    """RenditionSpec took np.int64 bitrates and rates and kept them, so the result's as_metadata() (for
    the row) raised 'Object of type int64 is not JSON serializable'; np.float32 quality was refused."""
    import json

    pytest.importorskip("soxr")
    from musicstore.audio import RenditionSpec, render_audio

    numbers: list[Any] = [np.int64(96), np.int64(24_000), np.float32(4.0), np.int64(3)]
    specs = {
        "a.mp3": RenditionSpec("mp3", numbers[0]),
        "a.opus": RenditionSpec("opus", numbers[0], sample_rate=numbers[1]),
        "a.ogg": RenditionSpec("vorbis", quality=numbers[2]),
        "a.flac": RenditionSpec("flac", compression_level=numbers[3]),
    }
    audio = clip(seconds=1.0)
    for name, spec in specs.items():
        result = render_audio(audio, RATE, tmp_path / name, spec, "streaming")
        assert json.loads(json.dumps(result.as_metadata()))["bytes"] == result.bytes


@pytest.mark.parametrize("bad", [None, 5, b"a.mp3", "a\x00.mp3"])
def test_rendition_paths_of_the_wrong_type_are_invalid_input(tmp_path: Path, bad: Any) -> None:
    """render_file's master and target and render_audio's target raised a bare TypeError ('expected str,
    bytes or os.PathLike object, not NoneType') where export_audio's path is InvalidInput (b187a9c)."""
    pytest.importorskip("soxr")
    from musicstore.audio import RenditionSpec, render_audio, render_file

    master = export_audio(clip(), RATE, tmp_path / "m.wav").path
    spec = RenditionSpec("mp3")
    with pytest.raises(InvalidInput, match="master must be"):
        render_file(bad, tmp_path / "a.mp3", spec)
    with pytest.raises(InvalidInput, match="path must be"):
        render_file(master, bad, spec)
    with pytest.raises(InvalidInput, match="path must be"):
        render_audio(clip(), RATE, bad, spec)
    assert [p.name for p in tmp_path.iterdir()] == ["m.wav"]


def test_rendition_options_take_numpy_numbers() -> None:
    """RenditionOptions refused np.float32 levels ('must be a number in [0, 6]') where ExportOptions and
    RenditionSpec take them."""
    from musicstore.audio import RenditionOptions

    levels: list[Any] = [np.int64(3), np.float32(1.5), np.float32(0.25), np.int64(12), np.float32(20.0)]
    options = RenditionOptions(*levels)
    assert (options.headroom_db, options.margin_db, options.max_limiting_db, options.max_gain_db) == (
        1.5,
        0.25,
        12.0,
        20.0,
    )
    assert all(type(v) is float for v in (options.headroom_db, options.margin_db, options.max_gain_db))
    with pytest.raises(InvalidInput, match="margin_db"):
        RenditionOptions(margin_db=np.bool_(True))  # type: ignore[arg-type]


def _meter_clip(
    seed: int, channels: int, samples: int, nyquist: bool
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Noise (or a near-Nyquist tone: the far part's reading) whose largest |sample| is in [0.5, 1)."""
    rng = np.random.default_rng(seed)
    if nyquist:
        n = np.arange(samples)
        audio = np.stack([np.sin(n * np.pi * 0.97 + phase) for phase in rng.uniform(0, 6, channels)])
    else:
        audio = rng.standard_normal((channels, samples))
    audio /= np.abs(audio).max()
    return (audio * rng.uniform(0.5, 0.99)).astype(np.float32)


@given(
    seed=st.integers(0, 2**16),
    channels=st.integers(1, 2),
    samples=st.integers(1, 3_000),
    nyquist=st.booleans(),
    exponent=st.integers(-100, 127),
)
@settings(max_examples=40, deadline=None)
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_the_true_peak_meters_read_a_clip_scaled_by_a_power_of_two_exactly_scaled(
    seed: int, channels: int, samples: int, nyquist: bool, exponent: int
) -> None:
    """Multiplying by 2**k is exact in float32, and so is the meters' reading: beyond 1e35 or so their float32
    arithmetic overflowed (inf, or the sample peak: 0.03 dB under on noise), and far under 1e-30 their
    products lost bits to denormals. The meters read such a clip on a copy scaled by a power of two."""
    from musicstore.audio.truepeak import annex2_true_peak, true_peak

    audio = _meter_clip(seed, channels, samples, nyquist)
    scaled = np.ldexp(audio, exponent).astype(np.float32)
    assert np.array_equal(np.ldexp(scaled, -exponent), audio)  # the scaled clip holds every bit
    for meter in (true_peak, annex2_true_peak):
        assert meter(scaled) == np.ldexp(meter(audio), exponent), meter.__name__


@pytest.mark.parametrize("scale", [2.0**60, 2.0**127, 1e30, 1e35, 1e37, 3e38, 2.0**-60, 1e-30, 1e-40])
@pytest.mark.parametrize(
    "options",
    [
        ExportOptions(dither_seed=1),
        ExportOptions(dither_seed=1, target_lufs=-6.0),  # limited
        ExportOptions(dither_seed=1, limiter=False),
        ExportOptions(normalize=False, subtype="FLOAT"),
    ],
    ids=["normalized", "limited", "no_limiter", "as_is"],
)
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_export_figures_do_not_depend_on_the_clip_s_scale(
    tmp_path: Path, scale: float, options: ExportOptions
) -> None:
    """A finite float32 clip of huge samples was written normalized, but its true peak after read inf
    (1e35) or the sample peak (1e37, 3e38: -5.906 dBTP for -5.877); its loudness power (float32) overflowed
    from 2**64 and tiny clips' underflowed. An export's figures are those of the clip at scale 1, its levels
    before (and an unchanged clip's levels after) shifted by 20 log10(scale), its gain by the opposite; a
    clip scaled by a power of two beyond 2**48 is written as the clip is, to the byte."""
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((2, RATE // 2))
    audio[:, 500:700] = np.sin(np.arange(200) * np.pi * 0.95)  # a near-Nyquist burst: the far part's reading
    audio = (audio / np.abs(audio).max() * 0.9).astype(np.float32)
    big = (audio * np.float32(scale)).astype(np.float32)
    reference = export_audio(audio, RATE, tmp_path / "one.wav", options)
    result = export_audio(big, RATE, tmp_path / "big.wav", options)
    shift = 20 * np.log10(scale)
    exact = float(np.ldexp(1.0, int(np.log2(scale)))) == scale  # a power of two: the same clip
    tolerance = 1e-9 if exact else 1e-4  # a decimal scale rounds each sample
    gated = reference.loudness_before + shift <= ABSOLUTE_GATE_LUFS  # every block: tiny clips are silent
    if gated:
        assert result.loudness_before == float("-inf")
        assert result.status == ("silent" if options.normalize else "as_is")
    else:
        assert result.status == reference.status
        assert result.loudness_before == pytest.approx(reference.loudness_before + shift, abs=tolerance)
    if options.normalize and not gated:
        for name in ("loudness_after", "true_peak_after", "sample_peak"):
            assert getattr(result, name) == pytest.approx(getattr(reference, name), abs=tolerance), name
        # a limiter that turns the whole clip down splits its work between gain and reduction as the samples'
        # last bits fall (a scale of 1.0000001 moved 0.6 dB of this clip's from one to the other): compared
        # where the clip is the same
        if exact or result.status != "limited":
            assert result.gain_db == pytest.approx(reference.gain_db - shift, abs=tolerance)
            reduction = reference.limiter_max_reduction_db
            assert result.limiter_max_reduction_db == pytest.approx(reduction, abs=tolerance)
            assert result.limiter_fraction == pytest.approx(reference.limiter_fraction, abs=1e-3)
        if exact and scale > 2.0**48:
            assert result.path.read_bytes() == reference.path.read_bytes()
    elif options.normalize:  # silent: written unchanged as zeros (PCM_16), its figures those of the zeros
        assert result.true_peak_after == float("-inf") and result.sample_peak == float("-inf")
    else:
        for name in ("true_peak_after", "sample_peak"):
            expected = getattr(reference, name) + shift
            assert getattr(result, name) == pytest.approx(expected, abs=tolerance), name
        written, _ = sf.read(result.path, dtype="float32", always_2d=True)
        assert np.array_equal(written.T, big)  # as given


def test_export_batch_figures_of_a_huge_item_are_those_of_the_clip(tmp_path: Path) -> None:
    """An item of huge samples in a batch: its figures, as the clip's at scale 1 (the others unchanged)."""
    audio = clip()
    audio = audio / np.abs(audio).max() * np.float32(0.9)
    batch = np.stack([audio, audio * np.float32(2.0**120), audio * np.float32(1e37)])
    paths = [tmp_path / f"{i}.wav" for i in range(3)]
    results = export_batch(batch, RATE, paths, ExportOptions(dither_seed=2))
    for result in results[1:]:
        assert result.status == results[0].status
        assert result.true_peak_after == pytest.approx(results[0].true_peak_after, abs=1e-4)
        assert result.loudness_after == pytest.approx(results[0].loudness_after, abs=1e-4)
    assert results[1].path.read_bytes() == results[0].path.read_bytes()


_KILLED_MIDWAY = """
import os, signal, sys
import numpy as np
from musicstore.audio import export_audio, export_batch, files

target, batch = sys.argv[1], sys.argv[2] == "batch"
write = files._Sink.write
written = [0]

def killed_midway(self, data):  # part of the file is on disk, then the process dies (no cleanup runs)
    done = write(self, data)
    written[0] += done
    if written[0] > 100_000:
        os.fsync(self.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return done

files._Sink.write = killed_midway
rng = np.random.default_rng(1)
audio = (rng.standard_normal((2, 32_000 * 10)) * 0.1).astype(np.float32)
if batch:
    export_batch(np.stack([audio, audio]), 32_000, [target, target + ".2.wav"], workers=1)
else:
    export_audio(audio, 32_000, target)
"""


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("earlier", [False, True])
def test_an_export_killed_midway_leaves_no_partial_file_at_its_path(
    tmp_path: Path, batch: bool, earlier: bool
) -> None:
    """SIGKILL while the encoder writes: the final path holds nothing (or the earlier file, whole); only a
    hidden ``.tmp`` file is left beside it, which no reader takes for the export."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "2026" / "01" / "02" / "gen.wav"
    before = b""
    if earlier:  # a retried export over the file of an earlier try
        export_audio(clip(seconds=2.0), RATE, target)
        before = target.read_bytes()
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_MIDWAY, str(target), "batch" if batch else "one"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    if earlier:
        assert target.read_bytes() == before
    else:
        assert not target.exists()
    assert not Path(f"{target}.2.wav").exists()
    left = [p.name for p in target.parent.iterdir() if p != target]
    assert left and all(name.startswith(".gen.wav.") and name.endswith(".tmp") for name in left), left


def _transients(channels: int, seconds: float, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A quiet noise bed with full-scale clicks twice a second: more peak-to-loudness than any cap allows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, round(seconds * RATE))) * 0.02
    x[:, :: RATE // 2] = 0.9
    return x.astype(np.float32)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cap=st.sampled_from([1.0, 3.0, 6.0, 9.5]),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_the_limiter_never_reduces_beyond_its_depth_cap(
    tmp_path: Path, cap: float, channels: int, seed: int
) -> None:
    """max_limiting_db caps the limiter's depth (issue 3: 'a cap on its depth, default 6 dB'): a clip that
    needs more was limited by the cap plus the curve's 0.02 dB aim margin (6.02 dB at the default cap),
    and reported so in limiter_max_reduction_db. The figure and the written samples now stay within it."""
    audio = _transients(channels, 2.0, seed)
    options = ExportOptions(max_limiting_db=cap, subtype="FLOAT")
    result = export_audio(audio, RATE, tmp_path / f"{seed}.wav", options)
    assert result.status == "target_missed"  # the cap was reached
    assert cap - 0.05 <= result.limiter_max_reduction_db <= cap
    written, _ = sf.read(result.path, dtype="float64", always_2d=True)
    plain = audio.T.astype(np.float64) * 10 ** (result.gain_db / 20)
    loud = np.abs(plain) > 1e-3
    assert 20 * np.log10(np.min(written[loud] / plain[loud])) >= -cap - 1e-6
    assert reference_true_peak_db(written.T) <= options.ceiling_dbtp + 0.2


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_the_warning_for_values_beyond_full_scale_says_what_the_file_holds(
    tmp_path: Path, subtype: str, caplog: pytest.LogCaptureFixture
) -> None:
    """normalize=False: a FLOAT file keeps values beyond full scale, yet the warning said they were
    'written as is (clipped)', as for a PCM file, which clips them."""
    import logging

    hot = np.tile(np.array([0.5, 1.2, -1.3], dtype=np.float32), 8_000)
    with caplog.at_level(logging.WARNING, logger="musicstore.audio"):
        options = ExportOptions(normalize=False, subtype=subtype)
        result = export_audio(hot, RATE, tmp_path / "hot.wav", options)
    assert result.clipped_samples == 16_000
    written, _ = sf.read(result.path, dtype="float32")
    kept = float(np.abs(written).max()) > 1.0
    assert kept == (subtype == "FLOAT")
    [message] = [r.getMessage() for r in caplog.records if "beyond full scale" in r.getMessage()]
    assert ("clipped" in message) != kept
    assert ("kept" in message) == kept


_RECORDING_KILLED_MIDWAY = """
import os, signal, sys
import numpy as np
from musicstore import Store
from musicstore.audio import files
from musicstore.recording import export_generation

url, root, generation_id = sys.argv[1:]
write = files._Sink.write
written = [0]

def killed_midway(self, data):
    done = write(self, data)
    written[0] += done
    if written[0] > 100_000:
        os.fsync(self.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return done

files._Sink.write = killed_midway
with Store(url) as store:
    generation = store.get_generation(generation_id)
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal((2, 32_000 * 10)) * 0.1).astype(np.float32)
    export_generation(store, generation, audio, root=root)
"""


def test_a_recording_killed_midway_leaves_no_file_and_its_job_can_be_exported_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SIGKILL while export_generation encodes: no file at the layout path, the row still processing (not
    completed without its file), and the same claim exports and completes on the next try."""
    import signal
    import subprocess
    import sys

    from musicstore import Store
    from musicstore.models import Status
    from musicstore.recording import export_generation

    root = tmp_path / "audio"
    with Store(sqlite_url) as store:
        store.create_generation("a harp", model_name="m", duration_seconds=10, sample_rate=RATE, channels=2)
        claimed = store.claim_next("gpu-0")
        assert claimed is not None
    run = subprocess.run(
        [sys.executable, "-c", _RECORDING_KILLED_MIDWAY, sqlite_url, str(root), claimed.id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    audio_files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert audio_files == []
    with Store(sqlite_url) as store:
        row = store.get_generation(claimed.id)
        assert row is not None and row.status is Status.PROCESSING and row.file_path is None
        recorded = export_generation(store, row, clip(seconds=10.0), root=root)
        done = store.get_generation(claimed.id)
        assert done is not None and done.status is Status.COMPLETED
        assert done.file_path is not None and (root / done.file_path).stat().st_size == done.file_size_bytes
        assert recorded.generation.id == claimed.id


@pytest.mark.parametrize("paths", [None, 3, 2.5, object()])
def test_export_batch_paths_that_are_not_a_sequence_are_invalid_input(tmp_path: Path, paths: Any) -> None:
    """export_batch(batch, rate, None) (or a number) raised a bare TypeError ('not iterable')."""
    with pytest.raises(InvalidInput, match="paths must be"):
        export_batch(np.stack([clip()]), RATE, paths)
    assert not any(tmp_path.iterdir())

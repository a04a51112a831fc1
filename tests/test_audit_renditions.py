"""Issue 14's bookkeeping under bad requests, on both database backends, a local root and a real SeaweedFS
bucket: any request ``render_generation`` cannot honour (an unknown format, a bitrate, mode, quality or
sample rate the codec does not take, a combination the master's rate or channels rule out; a master that
is missing or fails its checksum) raises a ``MusicstoreError`` before anything is written: no file or
object, no rendition row, the renditions' running totals unchanged. A valid request put first in the same
call is not made either (every request is checked before the first encode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicstore import Generation, Store
from musicstore.audio import RenditionSpec, synthesize_music
from musicstore.errors import InvalidAudio, InvalidInput, MusicstoreError
from musicstore.filestore import FileStore
from musicstore.maintenance.usage import storage_stats
from musicstore.rendering import render_generation


def _master(store: Store, files: FileStore, rate: int, channels: int) -> Generation:
    from musicstore.recording import export_generation

    store.create_generation(
        f"lofi at {rate} Hz", model_name="m", duration_seconds=1.0, sample_rate=rate, channels=channels
    )
    job = store.claim_next("w")
    assert job is not None
    audio = synthesize_music(1.0, rate, channels=channels, seed=1)
    return export_generation(store, job, audio, root=files).generation


def _snapshot(store: Store, files: FileStore, gid: str) -> tuple[Any, ...]:
    stats = storage_stats(store)
    return (
        sorted((o.key, o.size) for o in files.list()),
        store.list_renditions(gid),
        stats.renditions,
        stats.rendition_bytes,
    )


def _spec(draw: Callable[..., Any]) -> Callable[[], RenditionSpec | str]:
    """A request, made when called (a ``RenditionSpec`` checks itself when made)."""
    fmt = draw(st.sampled_from(["mp3", "opus", "vorbis", "flac", "wav", "aac", "MP3", ""]))
    if draw(st.booleans()) and fmt:
        return lambda: fmt
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["bitrate_kbps"] = draw(st.sampled_from([-1, 0, 6, 7, 8, 100, 128, 192, 321, 512, 10**9, 1.5]))
    if draw(st.booleans()):
        kwargs["bitrate_mode"] = draw(st.sampled_from(["constant", "variable", "average", "vbr"]))
    if draw(st.booleans()):
        kwargs["quality"] = draw(st.sampled_from([-1, 0, 2, 9, 10, 11, float("nan"), True]))
    if draw(st.booleans()):
        kwargs["sample_rate"] = draw(
            st.sampled_from([0, 7_999, 8_000, 11_025, 12_000, 44_100, 48_000, 96_000, 192_000, 384_000])
        )
    if draw(st.booleans()):
        kwargs["subtype"] = draw(st.sampled_from(["PCM_16", "PCM_24", "FLOAT", "PCM_8", "ULAW"]))
    if draw(st.booleans()):
        kwargs["compression_level"] = draw(st.sampled_from([-1, 0, 5, 8, 9]))
    return lambda: RenditionSpec(fmt, **kwargs)


def _refused(spec: Callable[[], RenditionSpec | str], rate: int, channels: int) -> bool:
    """Whether the request is one the codec layer refuses for this master (the oracle's own check)."""
    try:
        made = spec()
        (RenditionSpec(made) if isinstance(made, str) else made).settings(rate, channels)
    except InvalidInput:
        return True
    return False


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_request_that_cannot_be_honoured_writes_nothing(
    store: Store, where: FileStore, data: st.DataObject
) -> None:
    masters: dict[tuple[int, int], Generation] = getattr(where, "_audit_masters", {})
    where._audit_masters = masters  # type: ignore[attr-defined]  # one master per shape, for every example
    shape = data.draw(st.sampled_from([(96_000, 2), (44_100, 2), (11_025, 1), (32_000, 6)]), label="master")
    if shape not in masters:
        masters[shape] = _master(store, where, *shape)
    master = masters[shape]
    request = _spec(data.draw)
    if not _refused(request, *shape):
        return  # an honourable request: made by the other tests; this one is about refusals
    first_valid = data.draw(st.booleans(), label="a valid request first")
    before = _snapshot(store, where, master.id)
    with pytest.raises(MusicstoreError):
        formats: list[RenditionSpec | str] = []
        if first_valid:
            formats.append("flac")
        formats.append(request())
        render_generation(store, master.id, root=where, formats=formats)
    assert _snapshot(store, where, master.id) == before


def test_a_master_missing_or_failing_its_checksum_writes_nothing(store: Store, where: FileStore) -> None:
    done = _master(store, where, 32_000, 2)
    key = str(done.file_path)
    body = b"".join(where.get(key, checksum=None))
    where.delete(key)
    where.put(key, body[:-2] + bytes([body[-2] ^ 1, body[-1]]))  # same size, one bit changed
    before = _snapshot(store, where, done.id)
    with pytest.raises(InvalidAudio, match="sha256"):
        render_generation(store, done.id, root=where, formats=["mp3", "opus"])
    assert _snapshot(store, where, done.id) == before
    where.delete(key)
    before = _snapshot(store, where, done.id)
    with pytest.raises(MusicstoreError):
        render_generation(store, done.id, root=where, formats=["mp3"])
    assert _snapshot(store, where, done.id) == before

"""Where a completed generation's audio file is, and its waveform: ``AudioPeaks``, the part of ``Dashboard``
(``musicstore.web.dashboard``) that locates the file and reads or computes its peaks (cached)."""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException

from ..delivery import Delivery, Located
from ..errors import InvalidAudio, InvalidInput, InvalidTransition, MusicstoreError, NotFound, StorageError
from ..filestore import ChecksumMismatch, LocalFileStore, ObjectNotFound
from ..filestore.base import briefly
from ..filestore.xattrs import XATTR_CHECKSUM, attribute
from ..maintenance.file_names import is_peaks_file_of, owned_peaks
from ..models import Generation
from ..storage_names import normalized_peaks_key

log = logging.getLogger("musicstore.web.app")  # the app's logger, as before the split

PEAK_BUCKETS = 1000
PEAKS_CACHED = 128


class AudioPeaks:
    """A mixin of ``Dashboard``: its ``delivery`` finds the file, its ``_peaks`` (under ``_lock``) caches the
    waveforms."""

    delivery: Delivery
    _peaks: OrderedDict[str, dict[str, Any]]
    _lock: threading.Lock

    def located(self, generation: Generation) -> Located:
        """Where a completed generation's file is (for its waveform, which reads it: not checked against its
        row); 404 when this app cannot reach it (no output root for a row recorded without a storage URL, or
        the file is gone from its folder)."""
        try:
            found = self.delivery.locate(generation)
        except (InvalidInput, InvalidTransition, NotFound):
            raise HTTPException(404, "no audio: its file is not reachable from this dashboard") from None
        if isinstance(found.files, LocalFileStore) and not _contained(found.files.root, found.key).is_file():
            raise HTTPException(404, "no audio: its file is missing")
        return found

    def checked(
        self, generation: Generation, *, brief: bool = False
    ) -> tuple[Located, os.stat_result | None]:
        """``located``, checked against its row before the file is offered to a listener (the audio, the
        page's player), and a local file's stat (None in a bucket): 404 when it is gone (from a bucket
        too: one HEAD, a single short attempt when ``brief``, as for a page that must not wait on every retry
        of an endpoint that is down; ``StorageError`` when the store cannot answer), 500 when it is not the
        file its row records: another size, or another SHA-256 kept beside it by its store (a folder's xattr,
        a bucket's metadata, read with the same stat or HEAD). No byte is hashed: a file changed in place to
        the same size, its xattr left as it was, is not seen (``reconcile --verify-checksums`` hashes)."""
        found = self.located(generation)
        stat_result = None
        try:
            if isinstance(found.files, LocalFileStore):
                stat_result, kept = _local_file(_contained(found.files.root, found.key))
                size = stat_result.st_size
            else:
                head = (briefly(found.files) if brief else found.files).head(found.key)
                size, kept = head.size, head.checksum
        except ObjectNotFound:
            raise HTTPException(404, "no audio: its file is missing") from None
        differs = [
            f"{what} {there!r} where its row records {recorded!r}"
            for what, there, recorded in (("size", size, found.size), ("SHA-256", kept, found.checksum))
            if there is not None and recorded is not None and there != recorded
        ]
        if differs:
            log.error("%s: its file is not served: its %s", generation.id, "; ".join(differs))
            raise HTTPException(500, "no audio: its file does not match its record")
        return found, stat_result

    def peaks(self, generation: Generation) -> dict[str, Any]:
        # its completion too: a master made again (a replay) has the same size, as any WAV of its length
        key = f"{generation.id}:{generation.completed_at}:{generation.file_size_bytes}"
        located = self.located(generation)  # first: a master gone since its peaks were cached is a 404
        with self._lock:
            cached = self._peaks.get(key)
            if cached is not None:
                self._peaks.move_to_end(key)
                return cached
        result = self.recorded_peaks(generation, located)
        if result is None:
            try:
                result = self.computed_peaks(generation, located)
            except InvalidAudio as exc:  # the recorded file is not audio (or holds NaN): no waveform
                log.warning("%s: no waveform (%s)", generation.id, exc)
                raise HTTPException(404, "no waveform: the audio file cannot be read as audio") from None
        with self._lock:
            self._peaks[key] = result
            while len(self._peaks) > PEAKS_CACHED:
                self._peaks.popitem(last=False)
        return result

    def computed_peaks(self, generation: Generation, located: Located) -> dict[str, Any]:
        """The waveform computed from the audio file, in about ``PEAK_BUCKETS`` buckets; else InvalidAudio."""
        import soundfile as sf

        from ..audio.file_checks import sndfile_name
        from ..audio.peaks import MAX_SAMPLES_PER_PIXEL, compute_peaks, file_peaks
        from ..audio.renditions import read_master

        try:
            if isinstance(located.files, LocalFileStore):
                path = _contained(located.files.root, located.key)
                frames = sf.info(sndfile_name(path)).frames  # 2**63 - 1: a FLAC not saying
                spp = min(max(1, math.ceil(frames / PEAK_BUCKETS)), MAX_SAMPLES_PER_PIXEL)
                found = file_peaks(path, spp)
            else:  # read_master: InvalidAudio for a truncated file too, which sf.read reads short
                try:
                    raw = self.delivery.read_audio(generation)
                except ObjectNotFound:  # as a folder's missing file (located): not the store failing
                    raise HTTPException(404, "no audio: its file is missing") from None
                except ChecksumMismatch as exc:  # damaged or changed: no waveform, as read_master's own
                    raise InvalidAudio(f"{located.key}: {exc}") from exc
                samples, rate = read_master(raw, located.key)
                frames = samples.shape[1]
                found = compute_peaks(samples, rate, max(1, math.ceil(frames / PEAK_BUCKETS)))
        except sf.LibsndfileError as exc:
            raise InvalidAudio(f"{located.key}: cannot read it as audio ({exc})") from exc
        return {
            "sample_rate": found.sample_rate,
            "samples_per_pixel": found.samples_per_pixel,
            "frames": found.frames,
            "length": found.length,
            "peaks": found.normalized()[0],
        }

    def recorded_peaks(self, generation: Generation, located: Located) -> dict[str, Any] | None:
        """The waveform from the peaks files the export put beside the master (``metadata["peaks"]``, its
        SHA-256 checked), in about ``PEAK_BUCKETS`` buckets (channels merged): the normalised file when the
        record has one (``normalized``: missing or damaged, it is an error, 500, never drawn from elsewhere),
        else the audiowaveform file; None when the row records none or that file cannot be read: ``peaks``
        then computes them from the audio file."""
        recorded = generation.metadata.get("peaks")
        if not isinstance(recorded, Mapping) or not isinstance(recorded.get("key"), str):
            return None
        if not _own_peaks(generation, recorded["key"]):
            log.warning("%s: its peaks record names %s, not a peaks file of its own: not used; the waveform "
                        "is read from the audio", generation.id, recorded["key"])  # fmt: skip
            return None
        normalized = recorded.get("normalized")
        if isinstance(normalized, Mapping):
            own = normalized_peaks_key(recorded["key"])
            return _regrouped(generation, *_normalized_pairs(generation, located, normalized, own))
        try:
            body = b"".join(located.files.get(recorded["key"], checksum=recorded.get("sha256")))
            doc = json.loads(body)
            bits, spp, length = int(doc["bits"]), int(doc["samples_per_pixel"]), int(doc["length"])
            pairs = np.asarray(doc["data"], dtype=np.float64).reshape(length, -1, 2) / float(1 << (bits - 1))
            rate = int(doc["sample_rate"])
        except (MusicstoreError, ValueError, KeyError, TypeError, OverflowError) as exc:  # 1e400, bits 2000
            log.warning("%s: its peaks file %s was not used (%s); the waveform is read from the audio",
                        generation.id, recorded["key"], exc)  # fmt: skip
            return None
        if length < 1 or spp < 1 or pairs.shape[1] < 1:  # no bucket, or no channel's data
            return None
        return _regrouped(generation, pairs, spp, rate)


def _own_peaks(generation: Generation, key: str) -> bool:
    """Whether ``key`` names a peaks file of ``generation`` (after its id, or beside its master after its
    stem, with no other generation's digest), as maintenance requires: a record that names another's (a
    request's own ``metadata["peaks"]``, which an export with ``peaks=False`` leaves) is not read."""
    return is_peaks_file_of(key, generation.id, generation.file_path) and owned_peaks(key, generation.id)


def _normalized_pairs(
    generation: Generation, located: Located, record: Mapping[str, Any], own: str
) -> tuple[Any, int, int]:
    """The (bucket, channel, min/max) floats of the normalised peaks file ``record`` names (``own``, beside
    the peaks file, or none is read), its samples per pixel and rate; HTTP 500 saying why when it is
    missing, damaged or not such a document."""
    key = record.get("key")
    try:
        if key != own:
            raise ValueError(f"it names no normalised peaks file beside the peaks: {dict(record)!r:.80}")
        body = b"".join(located.files.get(key, checksum=record.get("sha256")))
        doc = json.loads(body)
        spp, length, rate = int(doc["samples_per_pixel"]), int(doc["length"]), int(doc["sample_rate"])
        data = np.asarray(doc["data"], dtype=np.float64)
        pairs = data.reshape(data.shape[0], length, 2).transpose(1, 0, 2)
        if length < 1 or spp < 1 or pairs.shape[1] < 1:
            raise ValueError(f"{length} buckets of {spp} samples, {pairs.shape[1]} channels")
    except (MusicstoreError, ValueError, KeyError, TypeError, OverflowError, IndexError) as exc:
        log.error("%s: its recorded normalised peaks file %s cannot be read (%s)", generation.id, key, exc)
        raise HTTPException(
            500, f"no waveform: its recorded normalised peaks file {key} cannot be read; reconcile reports it"
        ) from None
    return pairs, spp, rate


def _regrouped(generation: Generation, pairs: Any, spp: int, rate: int) -> dict[str, Any]:
    """``pairs`` (bucket, channel, min/max) merged over channels into about ``PEAK_BUCKETS`` buckets."""
    length = int(pairs.shape[0])
    group = math.ceil(length / PEAK_BUCKETS)
    starts = np.arange(0, length, group)
    lows = np.minimum.reduceat(pairs[:, :, 0].min(axis=1), starts)
    highs = np.maximum.reduceat(pairs[:, :, 1].max(axis=1), starts)
    frames = generation.metadata.get("frames")
    return {
        "sample_rate": rate,
        "samples_per_pixel": spp * group,
        "frames": frames if isinstance(frames, int) and not isinstance(frames, bool) else length * spp,
        "length": len(starts),
        "peaks": np.clip(np.stack([lows, highs], axis=1), -1.0, 1.0).round(4).reshape(-1).tolist(),
    }


def _local_file(path: Path) -> tuple[os.stat_result, str | None]:
    """The stat of the regular file at ``path`` and the SHA-256 its store keeps beside it (None without
    one); ``ObjectNotFound`` when none is there, ``StorageError`` when it cannot be looked at."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO: refused below, no wait
    except (FileNotFoundError, NotADirectoryError):
        raise ObjectNotFound(f"{path.name}: no such file") from None
    except OSError as exc:
        raise StorageError(f"cannot open the recorded file: {exc.strerror}") from None
    try:
        found = os.fstat(fd)
        kept = attribute(fd, XATTR_CHECKSUM) if stat.S_ISREG(found.st_mode) else None
    except OSError as exc:
        raise StorageError(f"cannot read the recorded file's attributes: {exc.strerror}") from None
    finally:
        os.close(fd)
    if not stat.S_ISREG(found.st_mode):
        raise ObjectNotFound(f"{path.name}: not a regular file")
    return found, kept


def _contained(root: Path, key: str) -> Path:
    """``root/key``, refused unless it stays inside ``root`` (the key is the row's, never the URL's)."""
    path = (root / key).resolve()
    if not path.is_relative_to(root.resolve()):
        raise StorageError("the recorded file is outside the output root")
    return path

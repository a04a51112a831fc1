"""What a file's name under an output root or in a bucket says (``musicstore.maintenance.scan``): audio or
not, the generation id it carries (a master, a rendition, a waveform peaks file), an export's temp or staged
file; and the peaks record a generation's row holds."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, replace
from itertools import product

from ..storage_names import peaks_digest

AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
"""The types of the masters musicstore writes; reconcile and cleanup touch no other (but renditions)."""
RENDITION_SUFFIXES = AUDIO_SUFFIXES | {".mp3", ".opus", ".ogg", ".oga"}
"""The types of renditions (``musicstore.rendering``): audio when named ``<id>.<profile>.<8 hex>.<ext>``."""
_RENDITION = re.compile(r"([^/]+)\.[^./]+\.[0-9a-f]{8}\.(?:mp3|opus|ogg|oga|flac|wav)", re.I)
"""``musicstore.rendering.rendition_name``: a rendition beside its master; group 1 is the generation id, or
the stem of a master named by hand (``album/Take 1.wav``: ``Take 1``; any name, as a master's own stem is
taken: a rendition of ``Take 1.wav`` or ``take.final.wav`` whose generation was deleted was counted as a
file of another type, never an orphan)."""
_PEAKS = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9_-]{35})\.peaks\.[1-9][0-9]*\.(?:8|16)(?:\.split)?(?:\.normalized)?\.json"
)
"""``musicstore.rendering.peaks_name`` of a master at its layout name: ``<36-char id>.peaks.<samples per
pixel>.<8|16>[.split].json``, and the normalised peaks beside it (``….normalized.json``,
``storage_names.normalized_peaks_key``); group 1 is the generation id. Any other ``.json`` is a file of
another kind."""
_PEAKS_TAIL = re.compile(r"(?:([0-9a-f]{8})\.)?[1-9][0-9]*\.(?:8|16)(?:\.split)?(?:\.normalized)?\.json")
"""What follows ``<master's stem>.peaks.`` in a peaks file's name; group 1, the 8 hex of the generation's id
(``peaks_digest``) in the name of the peaks of a master whose stem's own name another's peaks held."""

_WRITER_TEMP = re.compile(r"\..+\.(?i:wav|flac|mp3|opus|ogg|oga)\.[A-Za-z0-9_]+\.tmp")
"""``musicstore.audio.files.write_atomic``: ``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")``. Only the
extension's case is free (it is the target's): the temp patterns' hex digits and ``.tmp`` are as the writers
make them, so that a file of the user's (``.Take.DEADBEEF0000.WAV``) is never taken for a stale temp file and
removed."""
_STAGED = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9_-]*\.[0-9a-f]{12}\.(?i:wav|flac)")
"""``musicstore.recording``: the exported file before it is renamed onto ``<id>.<ext>``."""
_STAGED_RENDITION = re.compile(
    r"\.[A-Za-z0-9][A-Za-z0-9_-]*\.[^./]+\.[0-9a-f]{8}\.[0-9a-f]{12}\.(?i:mp3|opus|ogg|oga|flac|wav)"
)
"""``musicstore.rendering``: a rendition before it is renamed onto its name, in its row's transaction."""


_PEAKS_TEMP = re.compile(rf"\..+\.peaks\.{_PEAKS_TAIL.pattern}\.[A-Za-z0-9_]+\.tmp")
"""The temp file of a peaks file being written (``write_atomic``, or a folder ``FileStore``'s ``put``): of
one named after its generation (``<id>.peaks.…json``) or after a master at a custom path
(``<stem>.peaks.[<8 hex>.]…json``, as ``render_peaks`` and ``copy_files`` put them; such a temp a killed put
left was a file of another type, never removed)."""


def is_temp_name(name: str) -> bool:
    """A temp or staged file name of an export in flight (or interrupted), or of a peaks file being put."""
    return bool(
        _WRITER_TEMP.fullmatch(name)
        or _STAGED.fullmatch(name)
        or _STAGED_RENDITION.fullmatch(name)
        or _PEAKS_TEMP.fullmatch(name)
    )


def is_audio_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in AUDIO_SUFFIXES


_SPELLINGS = tuple(
    sorted(
        {
            "".join(letters)
            for suffix in AUDIO_SUFFIXES
            for letters in product(*({c, c.upper()} for c in suffix))
        }
    )
)
"""Every spelling of ``AUDIO_SUFFIXES`` that ``is_audio_name`` takes (``.wav``, ``.WAV``, ``.Flac``...)."""


def master_names(stem: str) -> list[str]:
    """The names a master whose name without its extension is ``stem`` may have (``is_audio_name``: its
    suffix in any case): the masters a peaks file named after that stem may be of."""
    return [stem + suffix for suffix in _SPELLINGS]


_ID_STEM = re.compile(r"(?:.*/)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A master's path without its suffix when its name is a generation's id: the export's layout name."""


def kin_names(master: str) -> list[str]:
    """The other masters whose peaks may have the names of ``master``'s (a canonical path): its stem with
    every other spelling of a master's suffix (``t.flac``, ``t.FLAC``, ``t.WAV`` beside ``t.wav``); beside a
    master at its layout name (``<id>.wav``: the export's, whose peaks are named after its id) only the
    other lower-case type, as always: each spelling is a look-up per master of a cleanup page."""
    stem = posixpath.splitext(master)[0]
    names = (
        [stem + suffix for suffix in sorted(AUDIO_SUFFIXES)]
        if _ID_STEM.fullmatch(stem)
        else master_names(stem)
    )
    return [name for name in names if name != master]


def audio_stem(name: str) -> str | None:
    """The generation id an audio file's name carries (a master ``<id>.<ext>``, a rendition
    ``<id>.<profile>.<8 hex>.<ext>``); None for a name of another kind (a file maintenance never touches)."""
    if (rendition := _RENDITION.fullmatch(name)) is not None:
        return rendition.group(1)
    if is_audio_name(name) and not is_temp_name(name):
        return name[: name.rfind(".")]
    return None


def rendition_stem(name: str) -> str | None:
    """The generation id a rendition's name carries (``<id>.<profile>.<8 hex>.<ext>``); None for another."""
    found = _RENDITION.fullmatch(name)
    return None if found is None else found.group(1)


def peaks_stem(name: str) -> str | None:
    """The generation id a waveform peaks file's name carries (``musicstore.rendering.peaks_name``:
    ``<36-char id>.peaks.<int>.<8|16>[.split].json``); None for any other name."""
    found = _PEAKS.fullmatch(name)
    return None if found is None else found.group(1)


def is_peaks_of(name: str, stem: str, generation_id: str | None = None) -> bool:
    """Whether ``name`` is a peaks file of the master whose name without its extension is ``stem`` (and,
    given ``generation_id``, not one whose name carries another generation's ``peaks_digest``)."""
    head = f"{stem}.peaks."
    tail = _PEAKS_TAIL.fullmatch(name[len(head) :]) if name.startswith(head) else None
    return tail is not None and (generation_id is None or tail[1] in (None, peaks_digest(generation_id)))


def owned_peaks(key: str, generation_id: str) -> bool:
    """Whether the peaks file at ``key`` carries no other generation's ``peaks_digest`` in its name."""
    return peaks_owner(key.rpartition("/")[2]) in (None, peaks_digest(generation_id))


def peaks_owner(name: str) -> str | None:
    """The ``peaks_digest`` a peaks file's name carries (``<stem>.peaks.<8 hex>.…json``); None if none."""
    tail = _PEAKS_TAIL.fullmatch(name.rpartition(".peaks.")[2])
    return None if tail is None else tail[1]


def is_peaks_file_of(key: str, generation_id: str, master: str | None) -> bool:
    """Whether the file at ``key`` is a waveform peaks file of the generation ``generation_id`` whose
    master's key is ``master``: named after its id (``<id>.peaks.…json``), or beside that master and named
    after its stem (a master at a custom path: ``album/track 01.peaks.256.8.json``)."""
    folder, _, name = key.rpartition("/")
    if peaks_stem(name) == generation_id:
        return True
    if master is None:
        return False
    there, _, file = master.rpartition("/")
    same = posixpath.normpath(folder or ".") == posixpath.normpath(there or ".")  # ./a//b is a/b
    return same and is_peaks_of(name, file.rpartition(".")[0] or file)


@dataclass(frozen=True, slots=True)
class PeaksRecord:
    """The waveform peaks file a generation's row records (``metadata["peaks"]``, written by the export or
    ``render_peaks``: ``StoredPeaks.as_metadata``): its key in the generation's store (relative to the root),
    and its size and SHA-256 when recorded."""

    key: str
    size: int | None
    sha256: str | None
    normalized: PeaksRecord | None = None
    """The normalised peaks file the export put beside it (``metadata["peaks"]["normalized"]``: ``key``,
    ``bytes``, ``sha256``); None in a row recorded before it was written, or by ``render_peaks``."""

    @property
    def files(self) -> list[PeaksRecord]:
        """The files the record names: the peaks file, then the normalised one if recorded."""
        return [self] if self.normalized is None else [self, self.normalized]


_SHA256 = re.compile(r"[0-9a-f]{64}")


def peaks_record(text: str | None) -> PeaksRecord | None:
    """The record in ``metadata["peaks"]`` given as JSON text (the maintenance queries' ``peaks`` column);
    None when there is none. Raises ``ValueError`` (its message the reason) for one that is not a record of
    a file: not an object, no non-empty string ``key``, ``bytes`` not a non-negative integer, ``sha256`` not
    64 lowercase hex digits (either may be absent or null); the same of its ``normalized`` record if any."""
    if text is None:
        return None
    value = json.loads(text)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"metadata['peaks'] is not an object: {text:.80}")
    normalized = value.get("normalized")
    own = _file_record(value, "metadata['peaks']")
    if normalized is None:
        return own
    return replace(own, normalized=_file_record(normalized, "metadata['peaks']['normalized']"))


def _file_record(value: object, what: str) -> PeaksRecord:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object: {value!r:.80}")
    key, size, sha = value.get("key"), value.get("bytes"), value.get("sha256")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} names no file (its 'key' is {key!r:.80})")
    if size is not None and (type(size) is not int or size < 0):
        raise ValueError(f"{what}['bytes'] is not a size: {size!r:.80}")
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise ValueError(f"{what}['sha256'] is not a SHA-256: {sha!r:.80}")
    return PeaksRecord(key, size, sha)

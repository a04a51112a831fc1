"""Renditions of a generation's master (migration 0007): record one, get one, list a generation's; and what
else is made from a completed master is recorded in its row (``merge_metadata``: the waveform peaks).

A rendition row says what was asked for (format, codec settings, loudness profile), where the file is
(``storage_key``, relative to the output root), and what its decoded audio measured. ``settings`` is stored as
the canonical JSON of the codec settings and the profile, so (generation, format, settings) names one request
and the schema refuses a second row for it. Making the file is ``musicstore.rendering``'s part.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from operator import itemgetter
from typing import Any

from .. import validate
from ..errors import InvalidInput, InvalidTransition, NotFound, shown
from ..ids import check_id, new_id
from ..models import Generation, Status, to_datetime
from .reads import GENERATION
from .steps import NOW, Call, Params, Steps, reader, reads_all, reads_one, writer

FORMATS = ("mp3", "opus", "vorbis", "flac", "wav")
"""The rendition formats (``musicstore.audio.renditions.FORMATS``; the schema checks the same list)."""
LOUDNESS_STATUSES = ("normalized", "limited", "target_missed", "silent", "too_quiet")
BITRATE_MODES = ("constant", "variable", "average")
MAX_PROFILE_CHARS, MAX_CODEC_CHARS = 100, 40
"""The columns' own limits (``renditions.profile``, ``renditions.codec``: migration 0007's CHECKs): a longer
name is ``InvalidInput`` here, not a constraint the database refuses (``DatabaseError``) after the encode."""
_LOSSY_CODECS = {"mp3": "MPEG_LAYER_III", "opus": "OPUS", "vorbis": "VORBIS"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_SETTINGS_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Rendition:
    """One recorded rendition: a snapshot of its row. Levels in LUFS / dBTP (None for silence)."""

    id: str
    generation_id: str
    format: str
    codec: str
    bitrate_mode: str | None
    bitrate_kbps: int | None
    quality: float | None
    sample_rate: int
    channels: int
    settings: dict[str, Any]
    profile: str
    target_lufs: float
    ceiling_dbtp: float
    storage_key: str
    file_size_bytes: int
    duration_seconds: float
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    loudness_status: str
    checksum: str
    created_at: datetime

    @staticmethod
    def reader(names: Sequence[str]) -> Callable[[Sequence[Any]], Rendition]:
        """The row reader of ``renditions`` rows with these columns (``SELECT *``)."""
        pick = itemgetter(*[list(names).index(name) for name in _FIELDS])
        return lambda row: _rendition(pick(row))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, ``created_at`` as ISO 8601."""
        return {**asdict(self), "created_at": self.created_at.isoformat()}


_FIELDS = tuple(Rendition.__dataclass_fields__)


def _rendition(values: tuple[Any, ...]) -> Rendition:
    fields = dict(zip(_FIELDS, values, strict=True))
    fields["settings"] = json.loads(fields["settings"])
    fields["created_at"] = to_datetime(fields["created_at"])
    return Rendition(**fields)


RENDITION = Rendition.reader
"""Rows of ``renditions`` as ``Rendition`` objects."""


FLOAT_SETTINGS = ("quality", "target_lufs", "ceiling_dbtp")
"""The settings written as floats in a request's key (their columns are REAL): 5 as 5.0, -0.0 as 0.0."""
_INT64 = 2**63


def _canonical_value(value: Any) -> Any:
    """``value`` with each float equal to an integer (of 64 bits) written as that integer (5.0 as 5, -0.0 as
    0), at any depth: numbers equal as values are written alike."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and -_INT64 <= value < _INT64 else value
    if isinstance(value, dict):
        return {key: _canonical_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical_value(item) for item in value]
    return value


def canonical_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A request's settings as its key writes them: equal values in one form (``settings`` is checked).

    ``quality``, ``target_lufs`` and ``ceiling_dbtp`` (top level) as floats (5 as 5.0, -0.0 as 0.0: what
    ``RenditionSpec`` and the profiles give, and the columns hold); every other number that equals an integer
    as that integer (5.0 as 5, -0.0 as 0). Numbers equal as values thus make one key: one rendition, and the
    lookup of a request finds the row made for an equal one (``tests/test_renditions_regressions.py``).
    """
    canonical = {key: _canonical_value(value) for key, value in settings.items()}
    for key in FLOAT_SETTINGS:
        value = canonical.get(key)
        if type(value) is int and float(value) == value:
            canonical[key] = float(value)
        elif isinstance(value, float):
            canonical[key] = float(value) or 0.0  # -0.0 as 0.0 (a float fraction keeps its value)
    return canonical


def settings_key(settings: Mapping[str, Any]) -> str:
    """The canonical JSON of a request's settings (sorted keys, compact, equal numbers written alike:
    ``canonical_settings``): what the unique key compares."""
    if not isinstance(settings, Mapping):
        raise InvalidInput(f"settings must be a dict, got {type(settings).__name__}")
    settings = validate.plain_metadata(dict(settings))  # JSON values only (the metadata rules), numpy's too
    text = settings_json(canonical_settings(settings))
    if len(text.encode("utf-8")) > MAX_SETTINGS_BYTES:
        raise InvalidInput(f"settings are over {MAX_SETTINGS_BYTES} bytes as JSON")
    return text


def settings_json(settings: Mapping[str, Any]) -> str:
    """Settings as the key's JSON text: sorted keys, compact, UTF-8 as is (no checks)."""
    return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _level(value: object, what: str) -> float | None:
    """A measured level (LUFS, dBTP): a finite number, or None or −inf for silence (stored as NULL)."""
    if value is None:
        return None
    real = validate.real_number(value)  # any real number (np.float32 too), as a plain float
    if real is None or not -1e300 <= real <= 1e300:
        if real == -math.inf and value == -math.inf:  # not an int beyond any float
            return None
        raise InvalidInput(f"{what} must be a finite number, or None or -inf for silence, got {shown(value)}")
    return real


def _range(value: object, what: str, low: float, high: float, *, above: bool = False) -> float:
    """A level in [low, high] (dB, LUFS); ``above``: in (low, high]."""
    real = validate.real_number(value)  # any real number (np.float32 too), as a plain float
    if real is None or not low <= real <= high or (above and real == low):
        interval = f"({low:g}, {high:g}]" if above else f"[{low:g}, {high:g}]"
        raise InvalidInput(f"{what} must be a number in {interval}, got {shown(value)}")
    return real or 0.0  # -0.0 as 0.0: PostgreSQL kept it, SQLite read back 0.0


def _optional(settings: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``settings[key]`` when it is None or of ``kind``: an int (or numpy's integers: ``whole_number``),
    an int or float (or numpy's numbers: ``real_number``), a str. The column's checker makes it plain."""
    value = settings.get(key)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    if kind is int and validate.whole_number(value) is not None:
        return value
    if kind == (int, float) and validate.real_number(value) is not None:
        return value
    raise InvalidInput(f"settings[{shown(key)}] must be a {kind}, got {shown(value)}")


def _request(
    settings: Mapping[str, Any], profile: str, target_lufs: float, ceiling_dbtp: float
) -> dict[str, Any]:
    """The checked columns that say what was asked for, ``settings`` (the key's text) among them."""
    fmt = settings.get("format") if isinstance(settings, Mapping) else None
    if fmt not in FORMATS:
        raise InvalidInput(f"settings['format'] must be one of {list(FORMATS)}, got {shown(fmt)}")
    profile_name = validate.text(profile, "profile", max_chars=MAX_PROFILE_CHARS, blank=False)
    target = _range(target_lufs, "target_lufs", -70.0, 0.0, above=True)
    ceiling = _range(ceiling_dbtp, "ceiling_dbtp", -20.0, 0.0)
    mode = _optional(settings, "bitrate_mode", str)
    if mode is not None and mode not in BITRATE_MODES:
        raise InvalidInput(
            f"settings['bitrate_mode'] must be one of {list(BITRATE_MODES)}, got {shown(mode)}"
        )
    kbps = _optional(settings, "bitrate_kbps", int)
    quality = _optional(settings, "quality", (int, float))
    subtype = _optional(settings, "subtype", str)
    keyed = {**settings, "profile": profile_name, "target_lufs": target, "ceiling_dbtp": ceiling}
    return {
        "format": fmt,
        "codec": validate.text(
            subtype or _LOSSY_CODECS.get(fmt, fmt.upper()),
            "settings['subtype']",
            max_chars=MAX_CODEC_CHARS,
            blank=False,
        ),
        "bitrate_mode": mode,
        "bitrate_kbps": None if kbps is None else validate.integer(kbps, "bitrate_kbps", 1, 100_000),
        "quality": None if quality is None else validate.number(quality, "quality", positive=False),
        "sample_rate": validate.sample_rate(settings.get("sample_rate")),
        "channels": validate.channels(settings.get("channels")),
        "settings": settings_key(keyed),
        "profile": profile_name,
        "target_lufs": target,
        "ceiling_dbtp": ceiling,
    }


def _row(
    generation_id: str,
    *,
    storage_key: str,
    settings: Mapping[str, Any],
    profile: str,
    target_lufs: float,
    ceiling_dbtp: float,
    file_size_bytes: int,
    duration_seconds: float,
    loudness_lufs: float | None,
    true_peak_dbtp: float | None,
    loudness_status: str,
    checksum: str,
) -> dict[str, Any]:
    """The checked column values of a new rendition (id and created_at aside)."""
    gid = check_id(generation_id)
    request = _request(settings, profile, target_lufs, ceiling_dbtp)
    peak = _level(true_peak_dbtp, "true_peak_dbtp")
    if peak is not None and peak > request["ceiling_dbtp"]:
        raise InvalidInput(
            f"true_peak_dbtp {peak} is over the ceiling {request['ceiling_dbtp']}: a rendition keeps it"
        )
    if not isinstance(loudness_status, str) or loudness_status not in LOUDNESS_STATUSES:
        raise InvalidInput(
            f"loudness_status must be one of {list(LOUDNESS_STATUSES)}, got {shown(loudness_status)}"
        )
    if not isinstance(checksum, str) or not _SHA256.fullmatch(checksum):
        raise InvalidInput("checksum must be the file's SHA-256 as 64 lower-case hex digits")
    return {
        "generation_id": gid,
        **request,
        "storage_key": validate.relative_path(storage_key),
        "file_size_bytes": validate.integer(file_size_bytes, "file_size_bytes", 1),
        "duration_seconds": validate.duration(duration_seconds),
        "loudness_lufs": _level(loudness_lufs, "loudness_lufs"),
        "true_peak_dbtp": peak,
        "loudness_status": loudness_status,
        "checksum": checksum,
    }


def _refuse_taken(generation_id: str, request: Mapping[str, Any], storage_key: str) -> Steps[Generation]:
    """The completed generation, read under its lock (``FOR UPDATE`` on PostgreSQL; SQLite's write
    transaction), with no rendition yet for this request (``format`` and the key's ``settings``) nor at
    ``storage_key``: what the unique keys would refuse, checked before anything is written. ``NotFound``,
    ``InvalidTransition``, ``InvalidInput``."""
    generation: Generation | None = yield Call("get_generation_for_update", {"id": generation_id}, GENERATION)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id}")
    if generation.status is not Status.COMPLETED:
        raise InvalidTransition(
            f"generation {generation_id} is {generation.status}; only a completed generation has renditions",
            current=generation.status.value,
        )
    existing = yield from _recorded(generation_id, request)
    if existing is not None:
        raise InvalidInput(
            f"generation {generation_id} already has this {request['format']} rendition (id {existing.id}, "
            f"{existing.storage_key}); get it with get_rendition_by_settings"
        )
    at_key: Rendition | None = yield Call(
        "get_rendition_by_storage_key", {"storage_key": storage_key}, RENDITION
    )
    if at_key is not None:
        raise InvalidInput(
            f"storage_key {storage_key!r} is already rendition {at_key.id}'s (of generation "
            f"{at_key.generation_id}); one row per file"
        )
    return generation


@writer
def lock_for_rendition(
    generation_id: str,
    *,
    storage_key: str,
    settings: Mapping[str, Any],
    profile: str,
    target_lufs: float,
    ceiling_dbtp: float,
) -> Steps[Generation]:
    """The completed generation, locked until the transaction ends, checked as ``create_rendition`` checks
    the request (the same NotFound, InvalidTransition, InvalidInput: this request or this ``storage_key``
    already recorded); nothing written. Every rendition's insert takes this lock first, so until the
    transaction ends no other session records a rendition of this generation.

    ``musicstore.rendering`` takes it before it puts a rendition's object, in the transaction that inserts
    the row after the put: no other render of the request can reach the key meanwhile, while the insert
    (whose trigger locks the session's shard of ``rendition_totals`` on PostgreSQL, which other sessions'
    rendition inserts and deletes need too) runs only once the object is in, just before the commit."""
    gid = check_id(generation_id)
    request = _request(settings, profile, target_lufs, ceiling_dbtp)
    generation: Generation = yield from _refuse_taken(gid, request, validate.relative_path(storage_key))
    return generation


@writer
def create_rendition(
    generation_id: str,
    *,
    storage_key: str,
    settings: Mapping[str, Any],
    profile: str,
    target_lufs: float,
    ceiling_dbtp: float,
    file_size_bytes: int,
    duration_seconds: float,
    loudness_lufs: float | None,
    true_peak_dbtp: float | None,
    loudness_status: str,
    checksum: str,
) -> Steps[Rendition]:
    """Record a rendition of a completed generation; returns its row.

    ``settings``: the codec settings as ``RenditionResult.codec`` gives them (``format``, ``sample_rate``,
    ``channels``, and ``bitrate_mode``/``bitrate_kbps``/``quality``/``subtype``... as they apply); with the
    profile they make the request's key. ``NotFound`` without the generation, ``InvalidTransition`` unless it
    is completed, ``InvalidInput`` when the same request (or the same ``storage_key``) is already recorded.
    """
    fields = _row(
        generation_id, storage_key=storage_key, settings=settings, profile=profile, target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp, file_size_bytes=file_size_bytes, duration_seconds=duration_seconds,
        loudness_lufs=loudness_lufs, true_peak_dbtp=true_peak_dbtp, loudness_status=loudness_status,
        checksum=checksum,
    )  # fmt: skip
    yield from _refuse_taken(fields["generation_id"], fields, fields["storage_key"])
    row = {**fields, "id": new_id(), "created_at": (yield NOW)}
    yield Call("insert_rendition", row)
    return Rendition(**{**row, "settings": json.loads(row["settings"])})


@reads_one("get_rendition", RENDITION)
def get_rendition(rendition_id: str) -> Params:
    """The rendition with this id, or None."""
    return {"id": check_id(rendition_id)}


def _unnamed(settings: Mapping[str, Any]) -> str:
    """A request's key without its profile's name: what makes the audio (the name is a label)."""
    return settings_json(canonical_settings({k: v for k, v in settings.items() if k != "profile"}))


def _recorded(generation_id: str, request: Mapping[str, Any]) -> Steps[Rendition | None]:
    """The rendition recorded for ``request`` (its ``format`` and key, ``settings``): the row of that key,
    else the oldest of the generation's whose key differs from it by the profile's name alone (a custom
    profile with a named one's numbers, or another name: the same audio; rows keep the name they were
    recorded with, migrations 0018 and 0021)."""
    key = {"generation_id": generation_id, "format": request["format"], "settings": request["settings"]}
    exact: Rendition | None = yield Call("get_rendition_by_settings", key, RENDITION)
    if exact is not None:
        return exact
    rows: list[Rendition] = yield Call("list_renditions", {"generation_id": generation_id}, RENDITION)
    unnamed = _unnamed(json.loads(request["settings"]))
    same = [r for r in rows if r.format == request["format"] and _unnamed(r.settings) == unnamed]
    return min(same, key=lambda r: (r.created_at, r.id), default=None)


@reader
def get_rendition_by_settings(
    generation_id: str,
    settings: Mapping[str, Any],
    *,
    profile: str,
    target_lufs: float,
    ceiling_dbtp: float,
) -> Steps[Rendition | None]:
    """The rendition recorded for this request (codec ``settings``, target and ceiling), or None: one
    recorded under another profile name with the same numbers is this request's (``_recorded``)."""
    request = _request(settings, profile, target_lufs, ceiling_dbtp)
    return (yield from _recorded(check_id(generation_id), request))


@reads_all("list_renditions", RENDITION)
def list_renditions(generation_id: str) -> Params:
    """A generation's renditions, by format then settings (an empty list when it has none)."""
    return {"generation_id": check_id(generation_id)}


@writer
def merge_metadata(generation_id: str, values: Mapping[str, Any]) -> Steps[Generation]:
    """Merge ``values`` into a completed generation's metadata (top-level keys; theirs win) and return the
    row: how what is made later from its master is recorded (``rendering.render_peaks``: ``peaks``).

    The row is read under its lock (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction), so two merges
    never lose each other's keys. ``InvalidInput`` for values that are not a non-empty JSON object or would
    make the metadata too large, ``NotFound`` without the generation, ``InvalidTransition`` unless it is
    completed (a worker still owns a processing row's metadata).
    """
    gid = check_id(generation_id)
    if not isinstance(values, Mapping) or not values:
        raise InvalidInput(f"values must be a non-empty mapping of metadata keys, got {shown(values)}")
    values = validate.plain_metadata(dict(values))  # numpy's numbers as plain ones
    generation: Generation | None = yield Call("get_generation_for_update", {"id": gid}, GENERATION)
    if generation is None:
        raise NotFound(f"no generation with id {gid}")
    if generation.status is not Status.COMPLETED:
        raise InvalidTransition(
            f"generation {gid} is {generation.status}; only a completed generation's metadata is merged into",
            current=generation.status.value,
        )
    merged = {**generation.metadata, **values}
    encoded = validate.metadata(merged, checked=True)  # both halves are checked already
    changed = yield Call("update_completed_metadata", {"id": gid, "metadata": encoded})
    if changed != 1:  # cannot happen under the row lock; never report a merge that was not made
        raise InvalidTransition(f"generation {gid} changed while its metadata was merged", current=None)
    return replace(generation, metadata=validate.stored_metadata(merged, encoded))

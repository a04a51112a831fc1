"""Renditions of a completed generation's master, made and recorded: the one module that makes the files of
``musicstore.audio.renditions`` and records them with ``Store.create_rendition``.

``render_generation`` reads the master at ``<root>/<file_path>``, makes each rendition beside it as
``<master stem>.<profile>.<8 hex of the request>.<ext>`` (encoded, decoded back and measured), and records
its row. A file reaches its final name only inside the transaction that inserts its row (the staged file is
renamed there, as ``musicstore.recording`` does), so an error leaves neither a file without a row nor a row
without a file. A request already recorded is not made again: its row is returned. See docs/renditions.md.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import validate
from .audio import LoudnessProfile, Provenance, RenditionOptions, RenditionSpec, get_profile, render_file
from .audio.renditions import EXTENSIONS, RenditionResult
from .errors import DatabaseError, InvalidInput, InvalidTransition, NotFound, StorageError
from .filestore.fsync import fsync
from .models import Generation, Status
from .ops import Rendition
from .ops.renditions import settings_key
from .ops.storage import get_storage
from .store import Store

__all__ = ["render_generation", "rendition_name"]


def _specs(formats: Sequence[str | RenditionSpec] | str, bitrate_kbps: int | None) -> list[RenditionSpec]:
    if isinstance(formats, str | RenditionSpec):
        formats = [formats]
    if not isinstance(formats, Sequence) or not formats:
        raise InvalidInput("formats must name at least one format (mp3, opus, vorbis, flac, wav) or spec")
    specs = []
    for item in formats:
        if isinstance(item, RenditionSpec):
            specs.append(item)
        elif bitrate_kbps is not None and item in ("mp3", "opus"):
            specs.append(RenditionSpec(item, bitrate_kbps=bitrate_kbps))
        else:
            specs.append(RenditionSpec(item))  # InvalidInput for an unknown format
    if bitrate_kbps is not None and not any(s.format in ("mp3", "opus") for s in specs):
        raise InvalidInput("a bitrate applies to mp3 and opus renditions only")
    return specs


def _request_key(settings: dict[str, Any], profile: LoudnessProfile) -> str:
    keyed = {**settings, "profile": profile.name, "target_lufs": profile.target_lufs}
    return settings_key({**keyed, "ceiling_dbtp": profile.ceiling_dbtp})


def rendition_name(master: Path, settings: dict[str, Any], profile: LoudnessProfile) -> str:
    """The file name of a rendition beside ``master``: ``<stem>.<profile>.<8 hex of the request>.<ext>``."""
    digest = hashlib.sha256(_request_key(settings, profile).encode()).hexdigest()[:8]
    return f"{master.stem}.{profile.name}.{digest}{EXTENSIONS[settings['format']][0]}"


def _master(store: Store, generation_id: str, root: Path) -> tuple[Generation, Path]:
    """The completed generation and its master's path under ``root``."""
    generation = store.get_generation(generation_id)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id}")
    if generation.status is not Status.COMPLETED or generation.file_path is None:
        raise InvalidTransition(
            f"generation {generation.id} is {generation.status}; only a completed generation has a master "
            "to render",
            current=generation.status.value,
        )
    rel = validate.relative_path(generation.file_path)
    master = root / rel
    if not master.resolve().is_relative_to(root.resolve()):
        raise InvalidInput(f"the master {rel} of generation {generation.id} leads outside the root {root}")
    if not master.is_file():
        raise InvalidInput(
            f"the master {rel} of generation {generation.id} is missing under {root}; run reconcile"
        )
    return generation, master


def _provenance(generation: Generation) -> Provenance:
    seed = generation.metadata.get("seed")
    return Provenance(
        generation.prompt,
        model_name=generation.model_name,
        model_version=generation.model_version,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63 else None,
        generation_id=generation.id,
        created_at=generation.created_at,
    )


def render_generation(
    store: Store,
    generation_id: str,
    *,
    root: str | Path,
    formats: Sequence[str | RenditionSpec] | str = ("mp3",),
    profile: str | LoudnessProfile = "streaming",
    bitrate_kbps: int | None = None,
    options: RenditionOptions | None = None,
) -> list[Rendition]:
    """Make and record renditions of a completed generation's master; returns their rows, one per format.

    ``formats``: names (``mp3``, ``opus``, ``vorbis``, ``flac``, ``wav``, with default settings, and
    ``bitrate_kbps`` for mp3 and opus) or ``RenditionSpec``s. A request already recorded (same generation,
    settings and profile) is returned as it is, not made again (also when another process records it while
    this one encodes: this one's file is removed, the recorded row returned). Raises before anything is
    written:
    ``NotFound``, ``InvalidTransition`` (not completed), ``InvalidInput`` (a bad format, bitrate, profile or
    combination; a master missing or outside the root), ``InvalidAudio`` (a master that fails its recorded
    ``sha256``); ``RenditionFailed`` when no encode keeps the ceiling. Renditions made before an error stay
    recorded, each with its file; the one that failed leaves nothing.
    """
    if not isinstance(root, str | os.PathLike) or "\x00" in str(root):
        raise InvalidInput(f"root must be a path (str or Path) without NUL, got {type(root).__name__}")
    base = Path(root)
    specs = _specs(formats, bitrate_kbps)
    chosen = get_profile(profile)
    generation, master = _master(store, generation_id, base)
    rate, channels = generation.sample_rate, generation.channels
    requests = [(spec, spec.settings(rate, channels).description) for spec in specs]
    provenance = _provenance(generation)
    stored = store.run(get_storage, generation.id)  # the master's recorded SHA-256 (migration 0006)
    if stored.storage_url is not None and not stored.storage_url.startswith("file:"):
        where = stored.storage_url.split("?")[0]
        raise InvalidInput(
            f"the master of generation {generation.id} is in object storage ({where}); rendering reads "
            "masters under a local root only"
        )
    recorded = stored.checksum
    made: list[Rendition] = []
    for spec, settings in requests:

        def recorded_row(settings: dict[str, Any] = settings) -> Rendition | None:
            return store.get_rendition_by_settings(
                generation.id,
                settings,
                profile=chosen.name,
                target_lufs=chosen.target_lufs,
                ceiling_dbtp=chosen.ceiling_dbtp,
            )

        found = recorded_row()
        if found is not None:
            made.append(found)
            continue
        final = master.with_name(rendition_name(master, settings, chosen))
        staged = final.with_name(f".{final.stem}.{secrets.token_hex(6)}{final.suffix}")
        result = render_file(
            master, staged, spec, chosen, provenance=provenance, options=options,
            sha256=recorded,
        )  # fmt: skip
        try:
            made.append(_record(store, generation.id, result, base, final))
        except (InvalidInput, DatabaseError):
            found = recorded_row()  # another process recorded the same request meanwhile: its row
            if found is None:
                raise
            made.append(found)
    return made


def _record(store: Store, generation_id: str, result: RenditionResult, root: Path, final: Path) -> Rendition:
    """Insert the rendition's row and move the staged file onto ``final`` in one transaction; on any error
    remove the file (staged, or placed) and re-raise."""
    staged, placed = result.path, False
    profile = result.profile
    try:
        with store.transaction() as tx:
            row = tx.create_rendition(
                generation_id,
                storage_key=final.relative_to(root).as_posix(),
                settings=result.codec,
                profile=profile.name,
                target_lufs=profile.target_lufs,
                ceiling_dbtp=profile.ceiling_dbtp,
                file_size_bytes=result.bytes,
                duration_seconds=result.duration,
                loudness_lufs=result.loudness,
                true_peak_dbtp=result.true_peak,
                loudness_status=result.status,
                checksum=result.sha256,
            )
            try:  # the row is in (the unique keys held): only now may the file take its place
                os.replace(staged, final)
                placed = True
                fsync(final.parent, directory=True)
            except OSError as exc:
                raise StorageError(f"moving {staged} to {final} failed: {exc}") from exc
    except BaseException as exc:
        for path in (staged, final) if placed else (staged,):
            try:
                path.unlink(missing_ok=True)
            except OSError as cleanup:
                exc.add_note(f"and removing {path} failed: {cleanup}")
        what = result.codec.get("format")
        exc.add_note(f"the {what} rendition of {generation_id} was not recorded; its file was removed")
        raise
    return row

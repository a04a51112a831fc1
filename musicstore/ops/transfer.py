"""Moving rows between stores: reading either table in id order, and importing rows as they are."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .. import validate
from ..models import EPOCH, Generation, Prompt, prompt_digest, to_datetime
from .prompts import PROMPT, digest_taken
from .reads import GENERATION
from .renditions import RENDITION, Rendition, settings_key
from .steps import Call, Params, Steps, reader, reads_all, writer


@reads_all("prompts_after", PROMPT)
def prompts_after(after_id: int, limit: int) -> Params:
    """Prompts with ids above ``after_id``, in id order (for paging through a whole store)."""
    return {"after_id": after_id, "limit": limit}


@reads_all("generations_after", GENERATION)
def generations_after(after_id: str, limit: int) -> Params:
    """Generations with ids above ``after_id``, in id order."""
    return {"after_id": after_id, "limit": limit}


@writer
def import_rows(prompts: list[Prompt], generations: list[Generation]) -> Steps[int]:
    """Insert rows read from another store as they are (idempotent); returns how many generations were new.

    Every row is checked first, as the writing operations check their values (``validate.imported_prompt``,
    ``validate.imported_generation``: a NUL in an old SQLite row's text is InvalidInput naming the row and
    the field, before anything is written); a ``file_path`` is stored in canonical form.
    """
    for prompt in prompts:
        validate.imported_prompt(prompt)
    paths = [validate.imported_generation(generation) for generation in generations]
    for prompt in prompts:
        changed = yield Call(
            "import_prompt",
            {
                "digest": prompt_digest(prompt.text),
                "text": prompt.text,
                "used_count": prompt.used_count,
                "first_used_at": prompt.first_used_at,
                "last_used_at": prompt.last_used_at,
            },
        )
        if changed != 1:
            raise digest_taken()
    inserted = 0
    for generation, path in zip(generations, paths, strict=True):
        fields = {name: getattr(generation, name) for name in Generation.__dataclass_fields__}
        fields["status"] = generation.status.value
        fields["metadata"] = validate.metadata(generation.metadata, checked=True)
        fields["prompt_digest"] = prompt_digest(generation.prompt)
        fields["file_path"] = path  # checked above: it stays under the output root
        inserted += yield Call("import_generation", fields)
    return inserted


@reads_all("renditions_after", RENDITION)
def renditions_after(after_id: str, limit: int) -> Params:
    """Renditions with ids above ``after_id``, in id order."""
    return {"after_id": after_id, "limit": limit}


def check_rendition(rendition: Rendition) -> None:
    """Raise InvalidInput, naming the rendition and the field, for a text the target could not store as it
    is (a NUL in an old SQLite row, which PostgreSQL refuses), or a float NaN or infinity."""
    fields = ("generation_id", "format", "codec", "bitrate_mode", "profile", "storage_key", "loudness_status")
    values: dict[str, object] = {name: getattr(rendition, name) for name in ("id", *fields, "checksum")}
    values["settings"] = settings_key(rendition.settings)
    floats = {name: getattr(rendition, name) for name in _FLOAT_FIELDS}
    validate.imported("rendition", rendition.id, values, floats)


_FLOAT_FIELDS = (
    "quality",
    "target_lufs",
    "ceiling_dbtp",
    "duration_seconds",
    "loudness_lufs",
    "true_peak_dbtp",
)


@writer
def import_renditions(renditions: list[Rendition]) -> Steps[int]:
    """Insert renditions read from another store as they are (idempotent; their generations first), each
    checked first (``check_rendition``: nothing is written when one cannot be stored); returns how many were
    new."""
    for rendition in renditions:
        check_rendition(rendition)
    inserted = 0
    for rendition in renditions:
        fields = {name: getattr(rendition, name) for name in Rendition.__dataclass_fields__}
        fields["settings"] = settings_key(rendition.settings)
        inserted += yield Call("import_rendition", fields)
    return inserted


@reader
def idempotency_keys_held(keys: list[str]) -> Steps[dict[str, str]]:
    """Of these idempotency keys, those a generation holds: key → that generation's id."""
    rows = yield Call("transfer_idempotency_keys_held", {"keys": json.dumps(keys)})
    return {r["idempotency_key"]: r["id"] for r in rows}


@reader
def renditions_held(keys: list[str], generation_ids: list[str]) -> Steps[list[dict[str, Any]]]:
    """The renditions (id, generation_id, format, settings, storage_key) at one of these storage keys or of
    one of these generations: what an imported rendition of another id would clash with."""
    params = {"keys": json.dumps(keys), "ids": json.dumps(generation_ids)}
    rows = yield Call("transfer_renditions_held", params)
    return [dict(r) for r in rows]


def _lane_served(names: Sequence[str]) -> Callable[[Sequence[Any]], tuple[str, datetime]]:
    """Rows of ``lanes_served_after`` as (owner key, aware UTC moment)."""
    return lambda row: (row[0], to_datetime(row[1]))


@reads_all("lanes_served_after", _lane_served)
def lanes_served_after(after_key: str, limit: int) -> Params:
    """The keyed lanes served at least once, with keys after ``after_key``, in key order: (owner key, when it
    was last served), what the claim's round robin orders lanes by and no row keeps."""
    return {"after_key": after_key, "never": EPOCH, "limit": limit}


@writer
def import_lanes_served(lanes: list[tuple[str, datetime]]) -> Steps[None]:
    """Each lane's last service as read from another store (``lanes_served_after``), kept where this store's
    is later (idempotent)."""
    for owner_key, served_at in lanes:
        yield Call("import_lane_served", {"owner_key": owner_key, "served_at": served_at})

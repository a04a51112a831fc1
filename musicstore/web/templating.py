"""What the dashboard's pages and JSON are made with: the package's assets (read once), the Jinja
environment and its filters (moments, ages, sizes, numbers), and a generation as JSON-ready data
(``generation_dict``, re-exported by ``musicstore.web.app``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import JSONResponse

from ..models import Generation

FIGURES = (  # the export's figures a generation's page shows: metadata key, label, unit
    ("loudness_lufs", "Loudness", "LUFS"),
    ("true_peak_dbtp", "True peak", "dBTP"),
    ("loudness_before_lufs", "Loudness before", "LUFS"),
    ("gain_db", "Gain", "dB"),
    ("sample_peak_dbfs", "Sample peak", "dBFS"),
    ("limiter_max_reduction_db", "Limiter reduction", "dB"),
    ("loudness_status", "Loudness status", ""),
    ("format", "Format", ""),
    ("subtype", "Subtype", ""),
)


def _assets() -> dict[str, tuple[bytes, str]]:
    """The static files, read once from the package: name → (bytes, media type)."""
    kinds = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
    folder = resources.files("musicstore.web") / "static"
    return {
        item.name: (item.read_bytes(), kinds[Path(item.name).suffix])
        for item in folder.iterdir()
        if Path(item.name).suffix in kinds
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("musicstore.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.filters["size"] = _size
    env.filters["num"] = _num
    env.filters["since"] = _since
    return env


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _size(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _num(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _since(moment: datetime | None, now: datetime) -> str:
    return "" if moment is None else _age((now - moment).total_seconds())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_GENERATION_FIELDS = tuple(f.name for f in dataclasses.fields(Generation))


def generation_dict(generation: Generation) -> dict[str, Any]:
    """A generation as JSON-ready data."""
    return {name: _jsonable(getattr(generation, name)) for name in _GENERATION_FIELDS}


def _json(data: Any) -> JSONResponse:
    return JSONResponse(_jsonable(data))

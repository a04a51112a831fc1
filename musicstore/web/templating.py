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
    if value is None:
        return ""
    value = value.astimezone(UTC)
    return f"{value.year:04d}-{value:%m-%d %H:%M:%S}"  # strftime's %Y: "999", not "0999"


def _age(seconds: float | None) -> str:
    """``seconds`` in the largest unit it fills as shown: 59.96 s is "1.0 min", not "60.0 s"."""
    if seconds is None:
        return "–"
    seconds = float(seconds)
    name, size = "s", 1.0
    for unit, unit_size in (("min", 60.0), ("h", 3600.0), ("d", 86400.0)):
        if abs(round(seconds / size, 1)) * size >= unit_size:
            name, size = unit, unit_size
    return f"{seconds / size:.1f} {name}"


def _size(value: int | None) -> str:
    """Bytes in the largest decimal unit under 1,000 as shown (999,960 bytes: "1.0 MB"), up to PB."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        shown = round(size) if unit == "B" else round(size, 1)
        if abs(shown) < 1000 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("not reached: PB returns")


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

"""The audio files' responses: Starlette's ``FileResponse`` with the Range headers that RFC 9110 (14.2) tells
a server to ignore removed before it reads them (it answered them 400), and the ranges it cannot serve left
out of a set that holds one it can (it answered the whole set 416); and a ``304`` for a request whose
``If-None-Match`` names the file's ETag (Starlette reads no precondition: the whole file again).

A Range of a unit other than ``bytes`` MUST be ignored, and one whose ranges are not valid syntax (``bytes=``,
``bytes=abc``, a last position before the first) may be: both are served the whole file, 200. A valid
``bytes`` range is Starlette's to serve (206) or to refuse as unsatisfiable (416): a set is unsatisfiable
only when none of its ranges is (14.1.1, 15.5.17), so the ranges past the file's end (and ``-0``) are taken
out of a set with another one inside the file.
"""

from __future__ import annotations

import os
import re
import stat
from email.utils import parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

_SPEC = re.compile(r"(?:(\d{1,100})-(\d{0,100})|-(\d{1,100}))\Z")
"""A range-spec; a position of over 100 digits is ignored too (int() refuses over 4,300: Starlette's 400)."""


def _specs(value: str) -> list[re.Match[str] | None]:
    """The range-specs of a ``bytes`` ranges-specifier's list (empty elements left out), each matched."""
    specs = [spec.strip(" \t") for spec in value.partition("=")[2].split(",")]
    return [_SPEC.match(spec) for spec in specs if spec]  # the list syntax allows empty elements


def valid_bytes_range(value: str) -> bool:
    """Whether ``value`` is a ``bytes`` ranges-specifier of RFC 9110 (14.1.1): its unit (any case), then one
    or more ``first-last``, ``first-`` or ``-suffix`` separated by commas, each last position (if any) not
    before its first."""
    unit, equals, _ = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return False
    found = _specs(value)
    return bool(found) and all(
        match is not None and (not match[2] or int(match[1]) <= int(match[2])) for match in found
    )


def satisfiable(value: str, size: int) -> str:
    """A valid ``bytes`` ranges-specifier ``value`` with the ranges a file of ``size`` bytes cannot serve
    (a first position at or past its end, a suffix of 0) left out, when another one remains; else as it is
    (one range, or none satisfiable: a 416)."""
    found = [match for match in _specs(value) if match is not None]
    kept = [
        match[0]
        for match in found
        if (int(match[1]) < size if match[3] is None else int(match[3]) > 0 and size > 0)
    ]
    return value if len(found) < 2 or not kept else "bytes=" + ",".join(kept)


def not_modified(etag: str, last_modified: str, request: Headers) -> bool:
    """Whether a GET or HEAD with these request headers is answered ``304`` (RFC 9110, 13.1.2 and 13.2.2):
    ``If-None-Match`` naming the file's ETag (weak comparison) or ``*``; without one, ``If-Modified-Since``
    (a valid date) not before its last modification."""
    if_none_match = request.get("if-none-match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return if_none_match.strip() == "*" or etag in tags
    since = request.get("if-modified-since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):  # not an HTTP-date: ignored
        return False


class AudioFileResponse(FileResponse):
    """A ``FileResponse`` that serves the whole file for a Range header RFC 9110 says to ignore, and the
    satisfiable ranges of a set that also holds others; ``304`` for a request whose ``If-None-Match`` names
    its ETag (or whose ``If-Modified-Since`` is not before its last modification)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Headers(scope=scope)
        conditional = "if-none-match" in request or "if-modified-since" in request
        if (
            conditional
            and await self._stat() is not None
            and not_modified(self.headers["etag"], self.headers["last-modified"], request)
        ):
            same = {name: self.headers[name] for name in ("etag", "last-modified", "accept-ranges")}
            await Response(status_code=304, headers=same)(scope, receive, send)
            return
        value = request.get("range")
        if value is not None:
            kept = [(name, raw) for name, raw in scope["headers"] if name.lower() != b"range"]
            if not valid_bytes_range(value):
                scope = {**scope, "headers": kept}
            elif "," in value and (found := await self._stat()) is not None:  # several: the ones it can serve
                scope = {
                    **scope,
                    "headers": [*kept, (b"range", satisfiable(value, found.st_size).encode("latin-1"))],
                }
        await super().__call__(scope, receive, send)

    async def _stat(self) -> os.stat_result | None:
        """The file's ``os.stat``, made once and kept as the response's (Starlette's ``__call__`` then makes
        none of its own, and the size the ranges are weighed by is the one it serves); None for a file gone
        or not a regular file, which Starlette's own then reports."""
        if self.stat_result is None:
            try:
                found = await run_in_threadpool(os.stat, self.path)
            except OSError:
                return None
            if not stat.S_ISREG(found.st_mode):
                return None
            self.stat_result = found
            self.set_stat_headers(found)
        return self.stat_result

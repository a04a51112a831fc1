"""The read-only dashboard: a Starlette ASGI app over a ``Store`` (pages, a JSON API, audio, ``/metrics``).

``create_app(store_or_url, root=..., token=...)`` returns the app; serve it with ``musicstore serve`` or any
ASGI server, or mount it in your own app (``Mount("/jobs", app=create_app(store))``: its links follow the
mount point). Every read runs in a read transaction (which refuses writes); only GET and HEAD are
answered. Templates autoescape everything; ids are checked (``musicstore.ids.check_id``) before a lookup;
the files served are the package's own assets (held in memory, looked up by name) and the audio files rows
record, found through ``musicstore.delivery`` (never a path from the URL). With a token, each request must
carry ``Authorization: Bearer <token>`` or the cookie that ``/login?token=<token>`` sets (for the browser's
own requests, e.g. ``<audio>``); the comparison is constant-time.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..delivery import Root
from ..errors import InvalidInput, InvalidTransition, MusicstoreError, NotFound, StorageError
from ..store import Store, require_store
from .access import _ACCESS_FILTER, DashboardApp, allowed_host_names
from .dashboard import Dashboard
from .templating import generation_dict

log = logging.getLogger(__name__)


def _error_handlers(dashboard: Dashboard) -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    def respond(request: Request, status: int, message: str) -> Response:
        path = request.url.path.removeprefix(request.scope.get("root_path", ""))
        if path.startswith("/api/") or path == "/metrics":
            return JSONResponse({"error": message, "status": status}, status_code=status)
        return dashboard.render(request, "error.html", status_code=status, status=status, message=message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return respond(request, exc.status_code, str(exc.detail))

    async def store_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, NotFound | InvalidTransition):
            return respond(request, 404, "not found")
        closed = _closed(dashboard.store)  # by its owner: not the request's fault (its InvalidInput)
        # a bad query value was answered 400 before any read (reads.asked): an InvalidInput here is the
        # store's (its clock giving a naive moment was a 400, the request blamed and nothing logged)
        # answered here, not raised on: uvicorn would never log it, so the reason is logged (the path without
        # its query; musicstore's messages carry no secret)
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        if closed:  # a request in flight as it closed too (its connection closed under it: a DatabaseError)
            return respond(request, 503, "the store is closed")
        if isinstance(exc, StorageError):
            return respond(request, 502, "the audio file could not be read from its storage")
        return respond(request, 500, "the store could not answer")

    async def server_error(request: Request, exc: Exception) -> Response:
        return respond(request, 500, "internal error")

    return {HTTPException: http_error, MusicstoreError: store_error, Exception: server_error}


def _closed(store: Store) -> bool:
    """Whether ``store`` was closed (by the caller who owns it, or at the app's shutdown): each read then
    raises ``InvalidInput`` "the store is closed", and one in flight as it closed a ``DatabaseError``."""
    return bool(getattr(store._connector, "closed", False))


def create_app(
    store_or_url: Store | str | None = None,
    *,
    root: Root | None = None,
    token: str | None = None,
    options: Mapping[str, Any] | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> DashboardApp:
    """The dashboard as an ASGI app.

    ``store_or_url``: an open ``Store`` (the caller closes it) or a database URL (opened here, closed when the
    app shuts down; None: the default database). ``root``: the output root of rows recorded without a
    storage URL (``musicstore.delivery``); ``options``: S3 settings for rows in a bucket. ``token``: if
    given, every request must carry it (see the module's docstring). ``allowed_hosts``: if given, a
    request whose ``Host`` is not an address, ``localhost`` or one of these names (``*.example.com``
    patterns too) is refused (400): a page whose DNS name its owner points at this host's loopback (DNS
    rebinding) reads nothing from a dashboard without a token (``musicstore serve`` sets it then).
    """
    if token is not None and (
        not isinstance(token, str)
        or len(token) < 8
        or token != token.strip()
        or any(unicodedata.category(c) == "Cc" for c in token)
    ):  # an Authorization header cannot carry a control character, and HTTP strips its value's ends
        raise InvalidInput(
            "token must be a string of at least 8 characters, without control characters (a newline read "
            "from a file) or whitespace at either end"
        )
    hosts = None if allowed_hosts is None else allowed_host_names(allowed_hosts)
    if not isinstance(store_or_url, Store | str | None):  # an AsyncStore was told its URL was mistyped
        require_store(
            store_or_url,
            "create_app takes a musicstore Store or a database URL",
            "pass the store's database URL (`create_app(url)`: the dashboard opens a Store of its own, its "
            "reads run in a thread pool)",
        )
    logging.getLogger("uvicorn.access").addFilter(_ACCESS_FILTER)  # /login?token= would log the token
    owned = not isinstance(store_or_url, Store)
    store = Store(store_or_url) if owned else store_or_url  # type: ignore[arg-type]
    assert isinstance(store, Store)
    dashboard = Dashboard(store, owned=owned, root=root, token=token, options=options)
    d = dashboard
    routes = [
        Route("/", d.overview, name="overview"),
        Route("/generations", d.table, name="generations"),
        Route("/generations/{id}", d.generation, name="generation"),
        Route("/prompts", d.prompts, name="prompts"),
        Route("/workers", d.workers, name="workers"),
        Route("/metrics", d.metrics, name="metrics"),
        Route("/audio/{id}", d.audio, name="audio"),
        Route("/static/{name}", d.asset, name="static"),
        Route("/login", d.login, name="login"),
        Route("/api/overview", d.api_overview),
        Route("/api/generations", d.api_generations),
        Route("/api/generations/{id}", d.api_generation),
        Route("/api/generations/{id}/peaks", d.api_peaks),
        Route("/api/prompts", d.api_prompts),
        Route("/api/workers", d.api_workers),
    ]

    runs = 0

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal runs
        if runs:  # run again (a second `with TestClient(app)`): the last shutdown closed its store and files
            again = Store(store.url.url) if owned else store
            Dashboard.__init__(dashboard, again, owned=owned, root=root, token=token, options=options)
        runs += 1
        try:
            yield
        finally:
            dashboard.close()

    app = Starlette(routes=routes, exception_handlers=_error_handlers(dashboard), lifespan=lifespan)
    return DashboardApp(app, token, dashboard, hosts)


__all__ = ["Dashboard", "DashboardApp", "create_app", "generation_dict"]

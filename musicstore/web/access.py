"""Who may read the dashboard, and what every response carries: ``DashboardApp`` (GET and HEAD only, the
token as a bearer header or the ``/login`` cookie compared in constant time, the hosts it answers when
``allowed_hosts`` is given, the security headers), and the filter that masks a ``token=`` query in uvicorn's
access lines (re-exported by ``musicstore.web.app``)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus, unquote_to_bytes

from starlette.requests import cookie_parser
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidInput

if TYPE_CHECKING:
    from .app import Dashboard


COOKIE = "musicstore_token"


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"media-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?i){_LABEL}(\.{_LABEL})*")
"""A host name as a ``Host`` header gives it: RFC 1123 labels, and underscores (Docker Compose's services)."""

_QUERY_ITEM = re.compile(r"([?&])([^=&#\s]*)=([^&#\s]*)")


def _masked(text: str) -> str:
    """``text`` with the value of each ``token`` query item masked, its name read as the app reads it
    (``%74oken`` and ``token`` alike)."""

    def mask(item: re.Match[str]) -> str:
        is_token = unquote_plus(item[2]) == "token"
        return f"{item[1]}{item[2]}=***" if is_token else item[0]

    return _QUERY_ITEM.sub(mask, text)


class _RedactedAccessLine(logging.Filter):
    """Masks the ``token=`` of a query (``/login?token=``) in uvicorn's access lines, whose formatter reads
    the record's args (the path and query among them) rather than its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


_ACCESS_FILTER = _RedactedAccessLine()


def login_token_matches(query_string: bytes, token: str) -> bool:
    """Whether the ``token`` of ``/login``'s query is ``token`` (constant time), its "+" read either way: as
    a form encodes a space, and as itself, typed in an address bar (a base64 token's, ``/login?token=a+b``).
    The last ``token`` item counts, as ``request.query_params`` reads it."""
    value = b""
    for item in query_string.split(b"&"):
        name, _, given = item.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == "token":
            value = given
    expected = token.encode()
    as_form = hmac.compare_digest(unquote_to_bytes(value.replace(b"+", b" ")), expected)
    as_typed = hmac.compare_digest(unquote_to_bytes(value), expected)
    return as_form | as_typed


def allowed_host_names(names: Iterable[str]) -> frozenset[str]:
    """``allowed_hosts`` checked: host names (lowercased, without a trailing dot; an address needs none), or
    ``*.`` patterns of at least two labels (``*.com`` would let every such page in)."""
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise InvalidInput(f"allowed_hosts must be a list of host names, got {type(names).__name__}")
    return frozenset(host_name(name) for name in names)


def host_name(name: object) -> str:
    """One of ``allowed_hosts``, checked (InvalidInput) and lowercased, without a trailing dot."""
    pattern = isinstance(name, str) and name.startswith("*.")
    bare = name.removeprefix("*.").removesuffix(".") if isinstance(name, str) else ""
    if not _HOST_NAME.fullmatch(bare) or (pattern and "." not in bare):
        raise InvalidInput(
            f"allowed_hosts: not a host name: {name!r:.80} (a name such as dash.example.com or my_service, or"
            " *.example.com for its subdomains)"
        )
    return ("*." if pattern else "") + bare.lower()


def host_of(scope: Scope) -> str:
    """The name a request's ``Host`` header gives, lowercase, without its port, an IPv6 address's brackets
    or a trailing dot ("" where it has none)."""
    host: str = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return name.removesuffix(".")  # a fully qualified name's dot: dash.example.com. is dash.example.com


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Whether a request for ``host`` is answered: an address, ``localhost``, a name in ``allowed`` or one
    under a ``*.`` pattern there. A DNS rebinding attack asks for a name of its own (its page's), which
    its DNS then points at this host's loopback: never an address, never ``localhost``."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if host in allowed or host == "localhost":
        return True
    return any(name.startswith("*.") and host.endswith(name[1:]) for name in allowed)


class DashboardApp:
    """The ASGI app ``create_app`` returns: GET/HEAD only, the token when one is set, requests only for the
    hosts ``host_allowed`` names when ``allowed_hosts`` is given, and the security headers on every
    response, around the Starlette app (``.app``) of the ``Dashboard`` (``.dashboard``)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        dashboard: Dashboard,
        allowed_hosts: frozenset[str] | None = None,
    ) -> None:
        self.app = app
        self.dashboard = dashboard
        self.token = None if token is None else token.encode()
        self.allowed_hosts = allowed_hosts

    def allowed(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        headers = dict(scope.get("headers") or [])
        given = b""
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        else:  # the cookie as /login set it: the token's UTF-8 percent-encoded (a header is latin-1)
            cookies = cookie_parser(headers.get(b"cookie", b"").decode("latin-1"))
            given = unquote_to_bytes(cookies.get(COOKIE, ""))
        return hmac.compare_digest(given, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}  # an asset's own Cache-Control stays alone
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        if self.allowed_hosts is not None and not host_allowed(host := host_of(scope), self.allowed_hosts):
            response: Response = PlainTextResponse(
                f"not a host this dashboard answers for: {host!r:.80} (an address, localhost, or a name given"
                " to create_app(allowed_hosts=...) or `musicstore serve --allowed-host`)\n",
                status_code=400,
            )
        elif scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse(
                "read-only: GET and HEAD only\n", status_code=405, headers={"Allow": "GET, HEAD"}
            )
        elif scope["path"].removeprefix(scope.get("root_path", "")) != "/login" and not self.allowed(scope):
            response = PlainTextResponse(
                "a token is required: Authorization: Bearer <token>, or open /login?token=<token>\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="musicstore"'},
            )
        else:
            await self.app(scope, receive, secured)
            return
        await response(scope, receive, secured)

"""``musicstore serve``: the read-only web dashboard (``musicstore.web``) under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys

from ..errors import InvalidInput, MusicstoreError, StorageError, shown
from ..store import Store
from .arguments import not_empty
from .common import ROOT_ENV, TOKEN_ENV, open_store, output_root
from .table import escape_controls

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web import create_app
    except ImportError as exc:
        raise InvalidInput(
            f"the dashboard needs the web extra ({exc.name} is missing): pip install 'musicstore[web]'"
        ) from None
    if args.token:  # on the command line, every user of this host reads it (ps, /proc/PID/cmdline)
        print(
            f"musicstore: warning: --token is visible to every user of this host (ps); set ${TOKEN_ENV} "
            "instead",
            file=sys.stderr,
        )
    token = args.token or os.environ.get(TOKEN_ENV)
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print(
            f"musicstore: warning: serving on {args.host} without a token (--token or ${TOKEN_ENV}); it "
            "answers requests for an address, localhost, this host's name or an --allowed-host name only",
            file=sys.stderr,
        )
    if args.allowed_host and token is not None:
        print("musicstore: warning: --allowed-host has no effect with a token", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address in a URL is bracketed
    site = f"http://{host}:{args.port}/"
    with open_store(args) as store:
        root = output_root(args)
        # without a token, only requests for an address, localhost or a name given (DNS rebinding)
        hosts = None if token is not None else [*args.allowed_host, *_own_names(args.host)]
        app = create_app(store, root=root, token=token, allowed_hosts=hosts)
        if args.output_root or os.environ.get(ROOT_ENV):
            _check_root(store, root, fail=args.check)
        if args.check:
            print(f"musicstore dashboard ready for {site} (--check: not started)")
            return 0
        print(f"musicstore dashboard on {site} (read-only; Ctrl-C stops it)")
        try:
            uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False)
        except SystemExit as exc:  # uvicorn exits 3 when it cannot listen: not the CLI's "no such id"
            if exc.code not in (0, None):
                raise MusicstoreError(
                    f"the dashboard could not listen on {args.host}:{args.port} (uvicorn's log says why)"
                ) from None
    return 0


def _check_root(store: Store, root: str, *, fail: bool) -> None:
    """A named output root (``-o``, ``$MUSICSTORE_OUTPUT_ROOT``) that is no folder: a typo or a mount not
    there, under which the dashboard answers 404 for every file. ``--check`` fails on it (StorageError, exit
    code 1); serving goes on with a warning, as the app does (the folder may appear later). The default root,
    named by no one, is not checked. ``--check`` asks an ``s3://`` root for one key, as ``demo`` does: its
    bucket not there, credentials refused or endpoint out of reach fail it (nothing was asked before)."""
    from ..delivery import Delivery
    from ..filestore import open_filestore

    try:
        Delivery(store, root=root).close()
        if fail and root.lower().startswith("s3://"):
            with contextlib.closing(open_filestore(root)) as files:
                next(iter(files.list(page_size=1)), None)
    except StorageError as exc:
        if fail:
            raise
        print(f"musicstore: warning: {escape_controls(str(exc))}; its files answer 404", file=sys.stderr)


def _own_names(host: str) -> list[str]:
    """The names a dashboard listening on ``host`` answers besides addresses and localhost: ``host`` itself
    where it is a name (the URL ``serve`` prints), and this host's name where it listens on every
    interface."""
    from ..web.access import host_name

    names = []
    for name in (host, socket.gethostname() if host in ("0.0.0.0", "::") else ""):
        with contextlib.suppress(InvalidInput):  # an address, or no name
            names.append(host_name(name))
    return names


def _allowed_host(text: str) -> str:
    """An ``--allowed-host`` name, checked as ``create_app(allowed_hosts=...)`` checks it (a usage error)."""
    try:
        from ..web.access import host_name
    except ImportError:  # no web extra: serve says so
        return text
    try:
        return host_name(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("allowed_hosts: ")) from None


def _port(text: str) -> int:
    """A TCP port, 1 to 65535 (a usage error otherwise, before the database is opened)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1 to 65535): {text!r}")
    return int(text)


def _host(text: str) -> str:
    """An address to listen on: an empty one (or with blanks at its ends) is a usage error, for uvicorn reads
    ``""`` as every interface, the opposite of the default."""
    try:  # what getaddrinfo does first: a name over 63 characters or a lone surrogate was uvicorn's traceback
        named = bool(text) and text == text.strip() and bool(text.encode("idna"))
    except UnicodeError:
        named = False
    if not named:
        raise argparse.ArgumentTypeError(
            f"not an address: {shown(text)} (127.0.0.1 or ::1 for this host only, 0.0.0.0 for every "
            "interface)"
        )
    return text


def add_serve_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--host",
        type=_host,
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this host only)",
    )
    sub.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    sub.add_argument(
        "--token",
        metavar="TOKEN",
        type=not_empty,  # "$UNSET": a usage error, never a dashboard without a token (or the variable's)
        help=f"require this bearer token (default: ${TOKEN_ENV}, which prefer: an argument shows in ps; "
        "none: no token)",
    )
    sub.add_argument(
        "--allowed-host",
        metavar="NAME",
        type=_allowed_host,
        action="append",
        default=[],
        help="without a token, also answer requests for this host name (repeat it; *.example.com for its "
        "subdomains): by default only for an address or localhost, so that no web page whose DNS name is "
        "pointed at this host (DNS rebinding) reads the dashboard",
    )
    sub.add_argument(
        "--check",
        action="store_true",
        help="open the database and the app, then exit without serving (a deployment's check)",
    )
    sub.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default info)",
    )

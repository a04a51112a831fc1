"""A live ASGI server in a thread and a headless Chromium, for browser tests of the dashboard.

``LiveServer(app)`` runs uvicorn on 127.0.0.1 on a free port in a daemon thread (``.url``; ``stop()``), with
the app's lifespan (startup before the first request, shutdown at ``stop()``).
``start_browser()`` starts Debian's Chromium (``/usr/bin/chromium``) headless through its chromedriver
(``/usr/bin/chromedriver``) with selenium, with the browser console captured (``console_errors(driver)``).
``browser_missing()`` says why a browser cannot start here (None when it can); ``$MUSICSTORE_CHROMIUM`` and
``$MUSICSTORE_CHROMEDRIVER`` name other binaries.

chromedriver runs in a session of its own (so does the Chromium it starts), as the throwaway servers do: a
terminal's Ctrl-C goes to the tests, whose teardown still has the browser to quit; it dies with the process
that started it (``PR_SET_PDEATHSIG``). Both get a temp folder of their own (``musicstore-browser-*``, their
``$TMPDIR``: Chromium's profile and sockets went to /tmp, where each run left a folder), and carry its name in
their environment (``MUSICSTORE_BROWSER_FOLDER``): ``quit()`` ends every process of theirs still running
(Chromium outlived a killed chromedriver, forever) and removes the folder; the next ``start_browser`` does so
for a run killed before its ``quit()``.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import processes
from . import _scratch
from ._seaweed import _die_with_parent, fits_socket

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _binary(env: str, default: str) -> str | None:
    name = os.environ.get(env) or default
    found = shutil.which(name) if not os.path.isabs(name) else name
    return found if found and os.access(found, os.X_OK) else None


def browser_missing() -> str | None:
    """Why no browser can start here, or None."""
    try:
        import selenium  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install selenium uvicorn, or --group dev)"
    for env, default, hint in (
        ("MUSICSTORE_CHROMIUM", CHROMIUM, "no Chromium at {}: apt-get install chromium chromium-driver"),
        ("MUSICSTORE_CHROMEDRIVER", CHROMEDRIVER, "no chromedriver at {}: apt-get install chromium-driver"),
    ):
        if _binary(env, default) is None:
            named = os.environ.get(env)
            return f"${env} names {named}, which is not an executable" if named else hint.format(default)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listener(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:``port`` (0: a free port, chosen by the kernel), for uvicorn to listen on.
    Bound here, it is never free between its choice and the server's bind, where another process (a second
    pytest-xdist worker's server) could take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds its own
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise RuntimeError(f"cannot serve on 127.0.0.1:{port}: {why}") from exc
    return sock


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread, until ``stop()``: on ``port``, else on a
    free one (the socket bound before the thread starts: no other process can take it meanwhile). It returns
    as soon as uvicorn has started; ``timeout`` only bounds that wait (60 s: a loaded 2-core CI host took more
    than the 10 s it was to import and start uvicorn and run the app's startup)."""

    def __init__(self, app: Any, *, port: int | None = None, timeout: float = 60.0) -> None:
        import uvicorn

        self.socket = _listener(port or 0)
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="auto", server_header=False
        )  # the app's lifespan runs (startup before the first request, shutdown at stop), as in production
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name=f"uvicorn-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = "its app's lifespan startup failed" if self._exited else f"not started in {timeout} s"
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{self.port}: {why}")
            time.sleep(0.02)

    _exited = False

    def _serve(self) -> None:
        """uvicorn's ``run``, whose ``sys.exit`` (the app's startup failed: uvicorn logged why) ends the
        thread quietly: an exception a thread dies of is pytest's warning, an error under ``-W error``."""
        try:
            self.server.run(sockets=[self.socket])
        except SystemExit:
            self._exited = True

    def stop(self, *, grace: float = 2.0) -> None:
        """Stop serving: requests in flight get ``grace`` seconds to end, then uvicorn cancels them (a test
        that failed while its request hung, a slow handler: their clients get a 500) and its lifespan's
        shutdown runs. Cancelled, not abandoned: from Python 3.12.1 asyncio's ``wait_closed`` waits for every
        connection, and a connection left open kept the thread serving. A thread still alive ``grace`` + 5 s
        on (a lifespan shutdown that hangs) is told to exit without the rest."""
        self.server.config.timeout_graceful_shutdown = math.ceil(grace)  # uvicorn takes whole seconds
        self.server.should_exit = True
        self.thread.join(timeout=grace + 5)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=10)
        self.socket.close()


def start_browser(*, width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium driven by selenium through chromedriver, logging the console. Its ``quit()``
    ends chromedriver, Chromium and every process of theirs, and removes their temp folder."""
    from selenium.webdriver.chrome.service import Service

    options = _options(width, height)
    path = _binary("MUSICSTORE_CHROMEDRIVER", CHROMEDRIVER) or CHROMEDRIVER
    _sweep()
    base = _scratch.folder(_PREFIX)  # a killed run's folder (and processes) swept first
    env = {**os.environ, _MARK: str(base)}
    if fits_socket(base / "org.chromium.Chromium.XXXXXX" / "SingletonSocket"):
        env["TMPDIR"] = str(base)  # its profile and sockets, else under a $TMPDIR too deep for a socket
    service = Service(
        path,
        env=env,
        popen_kw={
            "start_new_session": True,  # a terminal's Ctrl-C is for the tests, whose teardown needs it
            "preexec_fn": _die_with_parent if sys.platform == "linux" else None,
        },
    )
    try:
        return _chrome()(service=service, options=options, folder=base)
    except BaseException:
        _end(base)
        raise


def _options(width: int, height: int) -> Any:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = _binary("MUSICSTORE_CHROMIUM", CHROMIUM) or CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


_PREFIX = "musicstore-browser-"
_MARK = "MUSICSTORE_BROWSER_FOLDER"
"""The variable naming a browser's folder in the environment of chromedriver, Chromium and its helpers: how
their processes are found again (the renderers, which drop it, by their session)."""
_chrome_class: list[Any] = []
"""``_chrome()``'s class, once made."""


def _chrome() -> Any:
    """``webdriver.Chrome`` whose ``quit()`` also ends what is left of its processes and removes its folder
    (made once: selenium is imported only when a browser starts)."""
    if not _chrome_class:
        from selenium import webdriver

        class Chrome(webdriver.Chrome):
            def __init__(self, *, folder: Path, **kwargs: Any) -> None:
                self.musicstore_folder = folder
                super().__init__(**kwargs)

            def quit(self) -> None:
                try:
                    super().quit()
                finally:
                    _end(self.musicstore_folder)

        _chrome_class.append(Chrome)
    return _chrome_class[0]


def _processes() -> list[tuple[int, int, str]]:
    """Every process this one may look at: ``(pid, session id, its environment)`` (Linux ``/proc``; an
    environment that cannot be read is ``""``)."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            session = int(fields[3])
        except (OSError, ValueError, IndexError):
            continue
        try:
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            environ = ""
        found.append((int(entry.name), session, environ))
    return found


def _end(folder: Path) -> None:
    """SIGKILL every process of the browser whose folder is ``folder``, and remove the folder: those that
    carry its name in their environment, and the other members of their sessions (the renderers) save
    this process's own session. A session is taken for theirs only while one of them is in it: its id is
    then no other session's. Until none is left (one may start another meanwhile), and only then the folder
    is removed (a process still running wrote in it as it went)."""
    mark = f"\0{_MARK}={folder}\0"
    for _ in range(10):
        listed = _processes()
        theirs = {pid: session for pid, session, environ in listed if mark in f"\0{environ}\0"}
        sessions = {  # a session whose leader runs unmarked is another's: not theirs
            session
            for session in theirs.values()
            if session not in (0, 1, os.getsid(0)) and (session in theirs or not _running(session))
        }
        doomed = [pid for pid, session, _ in listed if session in sessions or pid in theirs]
        doomed = [pid for pid in doomed if pid != os.getpid() and _running(pid)]
        if not doomed:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                break
            continue
        for pid in doomed:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while any(map(_running, doomed)) and time.monotonic() < deadline:
            time.sleep(0.01)
    _scratch.release(folder)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended and not yet reaped, does not)."""
    return processes.alive(pid)


def _sweep() -> None:
    """End the browsers of runs killed before their ``quit()`` (their folder's maker gone), and remove their
    folders."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        if folder.is_dir() and not folder.is_symlink() and _scratch._stale(folder):
            _end(folder)


def console_errors(driver: Any) -> list[str]:
    """The console's errors since the last call (messages of level SEVERE)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: ``$MUSICSTORE_ARTIFACTS``, else ``default``."""
    folder = Path(os.environ.get("MUSICSTORE_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

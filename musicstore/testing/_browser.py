"""A live ASGI server in a thread and a headless Chromium, for browser tests of the dashboard.

``LiveServer(app)`` runs uvicorn on 127.0.0.1 on a free port in a daemon thread (``.url``; ``stop()``), with
the app's lifespan (startup before the first request, shutdown at ``stop()``).
``start_browser()`` starts Debian's Chromium (``/usr/bin/chromium``) headless through its chromedriver
(``/usr/bin/chromedriver``) with selenium, with the browser console captured (``console_errors(driver)``).
``browser_missing()`` says why a browser cannot start here (None when it can); ``$MUSICSTORE_CHROMIUM`` and
``$MUSICSTORE_CHROMEDRIVER`` name other binaries.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

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
    free one (the socket bound before the thread starts: no other process can take it meanwhile)."""

    def __init__(self, app: Any, *, port: int | None = None, timeout: float = 10.0) -> None:
        import uvicorn

        self.socket = _listener(port or 0)
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="auto", server_header=False
        )  # the app's lifespan runs (startup before the first request, shutdown at stop), as in production
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def start_browser(*, width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium driven by selenium through chromedriver, logging the console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

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
    service = Service(_binary("MUSICSTORE_CHROMEDRIVER", CHROMEDRIVER) or CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options)


def console_errors(driver: Any) -> list[str]:
    """The console's errors since the last call (messages of level SEVERE)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: ``$MUSICSTORE_ARTIFACTS``, else ``default``."""
    folder = Path(os.environ.get("MUSICSTORE_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

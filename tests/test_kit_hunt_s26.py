"""musicstore.testing as a third party uses it (docs/testing.md), run as a user's test files (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_a_live_server_whose_app_fails_to_start_is_a_clear_error_and_no_thread_exception(
    pytester: pytest.Pytester,
) -> None:
    """``musicstore_live_server(app)`` with an app whose lifespan startup raises: uvicorn's ``sys.exit`` in
    the server's thread was a thread dying of ``SystemExit``, which pytest reports as a warning (an error
    under ``-W error``, a usual ``filterwarnings``), and the start's error did not say why. Now the start
    raises RuntimeError naming the failed startup, and no thread dies of an exception."""
    pytester.makepyfile(
        """
        import contextlib

        import pytest
        from starlette.applications import Starlette


        @contextlib.asynccontextmanager
        async def lifespan(app):
            raise RuntimeError("no model weights")
            yield


        def test_start(musicstore_live_server):
            with pytest.raises(RuntimeError, match="lifespan startup failed"):
                musicstore_live_server(Starlette(lifespan=lifespan))
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error::pytest.PytestUnhandledThreadExceptionWarning"
    )
    result.assert_outcomes(passed=1)


def test_a_request_left_hanging_by_a_failed_test_holds_no_teardown(pytester: pytest.Pytester) -> None:
    """A test that fails while a request to its live server is still being served (a slow handler, a
    client left waiting): the teardown waited 10 s on uvicorn's graceful shutdown, then left its thread
    serving. Now in-flight requests get 2 s, then uvicorn exits without them, its thread ended."""
    pytester.makepyfile(
        """
        import asyncio
        import threading
        import time
        import urllib.request

        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        servers = []


        async def slow(request):
            await asyncio.sleep(60)
            return PlainTextResponse("late")


        def get(url):
            try:
                urllib.request.urlopen(url, timeout=90)
            except OSError:
                pass


        def test_fails_mid_request(musicstore_live_server):
            server = musicstore_live_server(Starlette(routes=[Route("/", slow)]))
            servers.append(server)
            threading.Thread(target=get, args=(server.url + "/",), daemon=True).start()
            time.sleep(0.5)
            assert False, "the test failed"


        def test_the_server_is_gone():
            assert not servers[0].thread.is_alive()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--durations=0", "--durations-min=0")
    result.assert_outcomes(failed=1, passed=1)
    lines = result.stdout.lines
    teardown = next(line for line in lines if "teardown" in line and "fails_mid_request" in line)
    assert float(teardown.split("s", 1)[0]) < 6, teardown

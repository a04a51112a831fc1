"""Whether a process runs: the one check behind every "its maker is gone" decision (a migration lock's
holder, a killed backup's temp file, a throwaway test server's folder)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts; so does a pid no process
    can have, so that such a name is never taken for a dead one's)."""
    if not 0 < pid < 2**31:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Helpers for tests of job leases (bundle jobs and rights jobs)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def reclaim_soon(reclaim: Callable[[object], list[int]], db, timeout: float = 10) -> list[int]:
    """Call ``reclaim(db)`` until it finds something: PostgreSQL frees a closed session's
    advisory locks shortly after the close, not at once."""
    deadline = time.monotonic() + timeout
    while not (found := reclaim(db)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found

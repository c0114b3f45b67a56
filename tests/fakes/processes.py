"""Waiting for a server process we started (Prefect, the bot) to answer its health URL."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float, log_tail: Callable[[], str],
                       what: str = "the server") -> None:
    """Poll `url` until it answers; raise with the end of the log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f}s:\n{log_tail()[-3000:]}")

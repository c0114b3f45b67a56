"""Start a real Prefect server of a given release, from that release's own virtual environment.

The pinned release runs from this project's venv; every other one from the venv `compat.venvs`
builds (cached). Each server gets its own PREFECT_HOME, a free port, and the machine's PostgreSQL
when it answers (SQLite otherwise), exactly like the suite's main server.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from compat.venvs import ensure_venv
from tests.fakes.prefect_server import PrefectServer

__all__ = ["executable_for", "start_server"]


def executable_for(version: str) -> Path:
    """This venv's `prefect` when it is that release, otherwise the release's own cached venv."""
    if importlib.metadata.version("prefect") == version:
        return Path(sys.executable).with_name("prefect")
    return ensure_venv(version)


def start_server(version: str, timeout: float = 300.0, use_postgres: bool | None = None) -> PrefectServer:
    """A started server of `version`; call `.stop()` when done. Raises RuntimeError with its log."""
    return PrefectServer(executable=executable_for(version), use_postgres=use_postgres).start(timeout=timeout)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """`python -m compat.servers VERSION`: start one server and print its API URL until Ctrl-C."""
    import signal
    import time

    version = (argv if argv is not None else sys.argv[1:])[0]
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the server too
    server = start_server(version)
    print(server.url, flush=True)
    try:
        while server.process and server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

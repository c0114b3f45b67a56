"""What the watcher benches share: a Prefect server (the one given, or a local one) and the test Slack."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def prefect_and_slack(prefect_api_url: str | None, work_prefix: str) -> Iterator[tuple[Any, Path]]:
    """Point PREFECT_API_URL at `prefect_api_url` (or a local server started here), start the test Slack,
    and yield it with a fresh work folder; both servers are stopped afterwards."""
    server = None
    if prefect_api_url:
        url = prefect_api_url
    else:
        from tests.fakes.prefect_server import PrefectServer

        server = PrefectServer()
        url = server.url
        print(f"starting a Prefect server at {url} …", file=sys.stderr)
        server.start()
    os.environ["PREFECT_API_URL"] = url
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from tests.fakes.slack_api import FakeSlackAPI

    slack = FakeSlackAPI().start()
    try:
        yield slack, Path(tempfile.mkdtemp(prefix=work_prefix))
    finally:
        slack.stop()
        if server is not None:
            server.stop()

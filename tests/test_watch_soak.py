"""The watcher soak: every situation of issue 25 on a real server with real process workers.

The short run (one cycle, a few minutes of real runs) is part of the normal suite; `make soak` runs
the same scenarios for at least 10 minutes. Both print the table and hold the safety lines: no unsafe
proposal, one post per incident, no false alarm. `make soak` also holds every situation detected. The
short cycle does not: its backlogs last about one or two budget-spaced reads, and in four runs on
2026-12-05 it missed one situation in two of them (the busy tag once, the flapping pool once), a known
gap of issue 25 that `make soak` keeps visible.
"""

from __future__ import annotations

import pytest

from tests.fakes.prefect_server import PrefectServer
from tests.soak_support import run_soak, table


@pytest.fixture
def soak_server():
    server = PrefectServer().start()  # its own: the soak restarts it
    yield server
    server.stop()


async def _soak(soak_server, slack_api, tmp_path, minutes: float, *, every_detection: bool) -> None:
    result = await run_soak(soak_server, slack_api, tmp_path, minutes)
    print("\n" + table(result))
    assert result["unsafe"] == 0, table(result)
    assert result["posts_per_incident"] <= 1, table(result)
    for scenario in result["scenarios"]:
        if every_detection and scenario.expect == "detect":
            assert scenario.detected, table(result)
        assert scenario.false_alarms == 0, table(result)


@pytest.mark.timeout(900)
async def test_watcher_soak_short(soak_server, slack_api, tmp_path):
    await _soak(soak_server, slack_api, tmp_path, minutes=0, every_detection=False)


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_watcher_soak_ten_minutes(soak_server, slack_api, tmp_path):
    await _soak(soak_server, slack_api, tmp_path, minutes=10, every_detection=True)

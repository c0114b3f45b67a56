"""With pools named `team?a` and `new\\nline` on the server, every read surface still works.

The issue-23 probe: one pool named `team?a` made `limits`, `watch`, "show limits", `/concurrency
list`, the Home tab and every read tool fail with "HTTP 405"; a newline gave an `httpx.InvalidURL`
traceback. Here the bot is built the way `serve` builds it (BotHarness → Runtime.run), the pools
are real, and each surface is read where Slack (or the model) receives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from prefect import get_client

from bot.prefect_ops import by_name
from bot.prefect_ops.tools import list_concurrency_limits, list_work_pools
from tests.harness import BotHarness

pytestmark = pytest.mark.timeout(300)

RUN = uuid.uuid4().hex[:6]
ODD = [f"team?a{RUN}", f"new\nline{RUN}", f"hash#{RUN}"]
ERRORS = ("HTTP 405", "InvalidURL", "Traceback", "unreachable")


@pytest.fixture(scope="module")
async def odd_pools(prefect_api_url):
    async with get_client() as client:
        for name in ODD:
            await client._client.post("/work_pools/", json={"name": name, "type": "process", "concurrency_limit": 2})
    yield ODD
    async with get_client() as client:
        for name in ODD:
            try:
                await by_name.delete_work_pool(client, name)
            except Exception:  # cleanup only
                pass


@pytest.fixture(scope="module")
def bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('odd') / 'bot.db'}"
    harness = BotHarness(slack_api, None, db, bot_user_rate_limit_per_minute=1000, bot_streaming=False).start()
    yield harness
    harness.stop()


async def test_read_tools_list_the_odd_pools_with_a_note(odd_pools):
    rows = {row["name"]: row for row in await list_work_pools()}
    for name in odd_pools:
        assert name in rows, name
        assert "the bot cannot change it" in rows[name]["note"]
    listed = await list_concurrency_limits(kind="work_pool")
    assert set(odd_pools) <= {row["name"] for row in listed}


def test_home_tab_and_slash_list_read_the_map(bot, fresh_slack, odd_pools):
    event = {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
             "event_ts": f"{time.time():.6f}"}
    assert bot.post_event(event).status == 200
    view = fresh_slack.wait_for("views.publish", 1, timeout=60)[-1].args["view"]
    shown = json.dumps(view)
    assert ":warning:" not in shown, shown[:2000]
    assert "Read from" in shown

    assert bot.post_command("/concurrency", "list").status == 200
    listed = fresh_slack.wait_for("response", 1, timeout=60)[-1].args["text"]
    assert not any(error in listed for error in ERRORS), listed[:2000]


def test_limits_cli_reads_the_map(odd_pools):
    done = subprocess.run([sys.executable, "-m", "bot.cli", "limits", "--kind", "work_pool", "--json"],
                          capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    names = {row["name"]: row for row in json.loads(done.stdout)["limits"]}
    for name in odd_pools:
        assert name in names

"""Prefect Cloud's URL shape (issue 21): the API under /api/accounts/{a}/workspaces/{w} with a key.

A local proxy (tests/fakes/cloud_proxy.py) mounts the suite's real server under Cloud's prefix and
refuses anything without the bearer key. Reads, a write read back, the event stream the watcher
follows, and the UI link base all go through it; PREFECT_CLOUD_API_URL points at the proxy so the
Prefect client treats it as Cloud, exactly as it treats api.prefect.cloud.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, PREFECT_CLOUD_API_URL, temporary_settings
from prefect.states import Pending

from bot.prefect_ops import concurrency_map
from bot.prefect_ops.capabilities import capabilities, cloud_ui_url
from bot.prefect_ops.changes import WorkPoolLimitChange
from bot.watch.events import EventFollower
from tests.fakes.cloud_proxy import CloudProxy
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cloud(prefect_server):
    proxy = CloudProxy(prefect_server.url).start()
    yield proxy
    proxy.stop()


def _env(cloud: CloudProxy, tmp_path: Path, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "home"),
               PREFECT_API_URL=cloud.url, PREFECT_CLOUD_API_URL=f"{cloud.root}/api")
    env.pop("PREFECT_API_KEY", None)
    if key is not None:
        env["PREFECT_API_KEY"] = key
    return env


async def test_reads_and_a_write_through_the_cloud_shape(cloud):
    pool = f"cloud-pool-{uuid.uuid4().hex[:8]}"
    async with PrefectClient(api=cloud.url, api_key=cloud.key) as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        caps = await capabilities(client, refresh=True)
        assert caps.cloud and caps.has("pool_concurrency_status")
        change = await WorkPoolLimitChange(action="set", pool=pool, limit=4).resolve(client)
        await change.apply(client)
        assert await change.read(client) == {"limit": 4}
        rows = {(r.kind, r.name): r for r in (await concurrency_map(client)).limits}
        assert rows[("work_pool", pool)].limit == 4
    assert all(status != 401 for _, _, status in cloud.requests)  # the key went on every request


def test_cli_through_the_cloud_shape_and_without_the_key(cloud, tmp_path):
    done = subprocess.run([sys.executable, "-m", "bot.cli", "limits", "--json", "--kind", "work_pool"],
                          env=_env(cloud, tmp_path, cloud.key), cwd=tmp_path, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["api_url"].startswith(cloud.url)
    refused = subprocess.run([sys.executable, "-m", "bot.cli", "limits"], env=_env(cloud, tmp_path, "pnu_wrong"),
                             cwd=tmp_path, capture_output=True, text=True, timeout=180)
    said = (refused.stdout + refused.stderr).strip()
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    assert "401" in said, said


async def test_event_stream_through_the_cloud_shape(cloud):
    """The watcher's follower subscribes through the proxy (key in the auth message) and sees a state change."""
    seen: list[int] = []
    with temporary_settings({PREFECT_API_URL: cloud.url, PREFECT_API_KEY: cloud.key,
                             PREFECT_CLOUD_API_URL: f"{cloud.root}/api"}):
        follower = EventFollower(on_event=lambda: seen.append(1))
        task = asyncio.ensure_future(follower.run())
        try:
            subscribed = lambda: any(m == "WS" for m, _, _ in cloud.requests)  # noqa: E731
            await asyncio.to_thread(wait_until, subscribed, 60, "a subscription")
            async with PrefectClient(api=cloud.url, api_key=cloud.key) as client:
                flow_id = await client.create_flow_from_name(f"cloud-flow-{uuid.uuid4().hex[:8]}")
                deployment = await client.create_deployment(flow_id, f"cloud-dep-{uuid.uuid4().hex[:6]}")
                run = await client.create_flow_run_from_deployment(deployment, name="cloud-run")
                await client.set_flow_run_state(run.id, Pending())
            await asyncio.to_thread(wait_until, lambda: follower.events > 0, 60, "an event")
        finally:
            task.cancel()
    assert ("WS", "/events/out", 101) in cloud.requests


def test_ui_links_take_clouds_layout(cloud):
    assert cloud_ui_url(cloud.url) == f"{cloud.root}/account/{cloud.account}/workspace/{cloud.workspace}"
    assert cloud_ui_url("https://api.prefect.cloud/api/accounts/a1/workspaces/w1") == \
        "https://app.prefect.cloud/account/a1/workspace/w1"
    assert cloud_ui_url("http://127.0.0.1:4200/api") is None


async def test_a_failing_check_leaves_no_coroutine_unawaited(cloud):
    """The server dies during the queue check: the diagnosis says Prefect is unavailable, and the pool
    check after it was never created, so no "coroutine '_check_pool' was never awaited" (seen on 3.4.25)."""
    import gc
    import warnings

    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    from bot.prefect_ops import PrefectUnavailable, diagnose_run

    suffix = uuid.uuid4().hex[:8]
    async with PrefectClient(api=cloud.url, api_key=cloud.key) as client:
        pool = f"warn-pool-{suffix}"
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = await client.create_flow_from_name(f"warn-flow-{suffix}")
        deployment = await client.create_deployment(flow_id, f"warn-dep-{suffix}", work_pool_name=pool)
        run = await client.create_flow_run_from_deployment(deployment, name=f"warn-run-{suffix}")
        cloud.failing = lambda method, tail: "drop" if tail == f"/work_queues/{run.work_queue_id}" else False
        try:
            with warnings.catch_warnings(record=True) as caught, temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
                warnings.simplefilter("always")
                with pytest.raises(PrefectUnavailable):
                    await diagnose_run(client, str(run.id))
                gc.collect()
        finally:
            cloud.failing = lambda method, tail: False
    assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]

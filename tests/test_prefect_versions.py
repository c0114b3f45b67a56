"""The bot against the oldest supported Prefect, 3.4 and a Prefect 2 server (issue 21).

The pinned release is what the rest of the suite runs on; this module adds real servers of other
releases, each from its own virtual environment that the repo builds (`compat/venvs.py`, cached
under ~/.cache/concurrency-bot, so only a first run downloads). One server per version per
worker, seeded once with the demo situation; every test reads or writes its own objects.
The full matrix (every 3.x minor) is `make compat`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate

from bot.prefect_ops import concurrency_map, diagnose_run
from bot.prefect_ops.capabilities import UnsupportedServer, capabilities, ensure_supported
from bot.prefect_ops.changes import (
    DeploymentLimitChange,
    GlobalLimitChange,
    TagLimitChange,
    WorkPoolLimitChange,
    WorkQueueLimitChange,
    WorkQueuePauseChange,
)
from bot.prefect_ops.demo_world import seed
from bot.prefect_ops.errors import NotFound, RouteMissing, translate
from compat.venvs import FLOOR, PREFECT2, VenvBuildError

REPO = Path(__file__).resolve().parents[1]
OLD = (FLOOR, "3.4.25")
pytestmark = pytest.mark.timeout(600)

_starting: dict[str, Future] = {}


def _start(version: str):
    from compat.servers import start_server

    try:
        return start_server(version, use_postgres=False)
    except VenvBuildError as exc:  # no package index here: say so instead of failing the suite
        return exc


def _server(version: str):
    """A started server of `version` for this worker. The first call starts all three side by
    side (start-up is mostly waiting on imports and migrations); they stop at the session's end."""
    if not _starting:
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="old-prefect")
        for each in (*OLD, PREFECT2):
            _starting[each] = pool.submit(_start, each)
        pool.shutdown(wait=False)
    found = _starting[version].result(timeout=900)
    if isinstance(found, Exception):
        pytest.skip(f"could not build the Prefect {version} environment: {found}")
    return found


@pytest.fixture(scope="session", autouse=True)
def _stop_old_servers():
    yield
    for started in _starting.values():
        try:
            server = started.result(timeout=900)
        except Exception:  # it never came up: nothing to stop
            continue
        if not isinstance(server, Exception):
            server.stop()


_seeded: set[str] = set()


async def _client(version: str) -> PrefectClient:
    server = _server(version)
    client = PrefectClient(api=server.url)
    await client.__aenter__()
    if version not in _seeded and version != PREFECT2:
        _seeded.add(version)
        await seed(client)
    return client


@pytest.mark.parametrize("version", OLD)
async def test_capabilities_are_read_from_the_server(version):
    client = await _client(version)
    try:
        caps = await capabilities(client, refresh=True)
        assert caps.version == version
        assert not caps.has("pool_concurrency_status")  # 3.6.23 added it
        assert caps.missing("pool_concurrency_status") == (
            f"your server, {version}, has no work pool concurrency status (`prefect work-pool slots`): "
            "upgrade to Prefect 3.6.23, or count the pool's PENDING and RUNNING flow runs "
            "(the bot does this for you)")
        assert caps.has("tag_limits_as_global") == (version == "3.4.25")
    finally:
        await client.__aexit__(None, None, None)


@pytest.mark.parametrize("version", OLD)
async def test_map_counts_pool_and_queue_slots_from_runs(version):
    """No concurrency-status route: the pool's and queue's slots are the PENDING/RUNNING runs."""
    client = await _client(version)
    try:
        cmap = await concurrency_map(client)
        rows = {(row.kind, row.name): row for row in cmap.limits}
        pool = rows[("work_pool", "demo-reports")]
        assert (pool.limit, pool.active_slots, [h.name for h in pool.holders]) == (1, 1, ["demo-report-1"])
        assert pool.waiting == 2
        queue = rows[("work_queue", "demo-reports/default")]
        assert (queue.active_slots, [h.name for h in queue.holders]) == (1, ["demo-report-1"])
        assert rows[("work_queue", "demo-etl/demo-backfill")].paused
        tag = rows[("tag", "demo-db")]
        assert (tag.limit, tag.active_slots) == (1, 1)
        deployment = rows[("deployment", "demo-etl/nightly")]
        assert (deployment.active_slots, deployment.waiting) == (1, 1)
    finally:
        await client.__aexit__(None, None, None)


@pytest.mark.parametrize("version", OLD)
async def test_diagnosis_of_waiting_runs(version):
    client = await _client(version)
    try:
        waiting = await diagnose_run(client, "demo-nightly-2")
        blocking = [f for f in waiting.findings if f.blocking]
        assert blocking[0].check == "deployment_limit"
        full_pool = await diagnose_run(client, "demo-report-2")
        pool = next(f for f in full_pool.findings if f.check == "work_pool")
        assert pool.blocking and "limit 1 and it is full" in pool.summary
        assert "demo-report-1" in pool.summary
    finally:
        await client.__aexit__(None, None, None)


@pytest.mark.parametrize("version", OLD)
async def test_a_missing_route_is_never_a_missing_object(version):
    """3.4 has no pool concurrency-status route: its 404 is RouteMissing; a missing pool is NotFound."""
    client = await _client(version)
    try:
        with pytest.raises(Exception) as route:
            await client.read_work_pool_concurrency_status("demo-reports")
        mapped = translate(route.value, server_url := str(client.api_url))
        assert isinstance(mapped, RouteMissing), mapped
        assert "/work_pools/demo-reports/concurrency_status" in str(mapped) and server_url.rstrip("/") in str(mapped)
        with pytest.raises(Exception) as pool:
            await client.read_work_pool(f"no-such-pool-{uuid.uuid4().hex[:6]}")
        assert isinstance(translate(pool.value, server_url), NotFound)
    finally:
        await client.__aexit__(None, None, None)


async def _apply_and_read(client: PrefectClient, change) -> dict:
    change = await change.resolve(client)
    await change.apply(client)
    return await change.read(client)


@pytest.mark.parametrize("version", OLD)
async def test_every_change_kind_is_applied_and_read_back(version):
    client = await _client(version)
    suffix = uuid.uuid4().hex[:8]
    try:
        pool = f"v-pool-{suffix}"
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        assert await _apply_and_read(client, WorkPoolLimitChange(action="set", pool=pool, limit=3)) == {"limit": 3}
        queue = WorkQueueLimitChange(action="set", pool=pool, queue="default", limit=2)
        assert await _apply_and_read(client, queue) == {"limit": 2}
        pause = WorkQueuePauseChange(action="pause", pool=pool, queue="default")
        assert await _apply_and_read(client, pause) == {"paused": True}
        deployment = DeploymentLimitChange(action="set", deployment="demo-reports/hourly", limit=2,
                                           collision_strategy="CANCEL_NEW")
        after = await _apply_and_read(client, deployment)
        assert (after["limit"], after["collision_strategy"]) == (2, "CANCEL_NEW")
        gcl = f"v-gcl-{suffix}"
        assert (await _apply_and_read(client, GlobalLimitChange(action="create", name=gcl, limit=4)))["limit"] == 4
        assert (await _apply_and_read(client, GlobalLimitChange(action="update", name=gcl, limit=5)))["limit"] == 5
        tag = f"v-tag-{suffix}"
        assert await _apply_and_read(client, TagLimitChange(action="set", tag=tag, limit=2)) == \
            {"exists": True, "limit": 2}
        assert await _apply_and_read(client, TagLimitChange(action="set", tag=tag, limit=3)) == \
            {"exists": True, "limit": 3}
        delete = await TagLimitChange(action="delete", tag=tag).resolve(client)
        await delete.apply(client)
        assert await TagLimitChange(action="set", tag=tag, limit=1).read(client) == {"exists": False, "limit": None}
    finally:
        await client.__aexit__(None, None, None)


async def test_prefect_2_is_refused_in_one_line(tmp_path):
    client = await _client(PREFECT2)
    try:
        with pytest.raises(UnsupportedServer) as refused:
            await ensure_supported(client)
        assert str(refused.value) == f"this is Prefect {PREFECT2}; the bot needs a Prefect 3 server"
        with pytest.raises(UnsupportedServer):
            await concurrency_map(client)
    finally:
        await client.__aexit__(None, None, None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "home"),
               PREFECT_API_URL=_server(PREFECT2).url)
    for args in (["limits"],):  # `demo` is refused the same way in `make compat`
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot.cli", *args], env=env,
                                       cwd=tmp_path, capture_output=True, text=True, timeout=240)
        said = (done.stdout + done.stderr).strip()
        assert said.endswith(f"this is Prefect {PREFECT2}; the bot needs a Prefect 3 server"), said
        assert "Traceback" not in said and len(said.splitlines()) == 1, said


@pytest.mark.parametrize("version", ["3.4.25", PREFECT2])
async def test_doctor_names_the_version_and_what_it_lacks(version):
    """`concurrency-bot doctor` on real old servers: 3.4 is ✓ with its missing features as ⚠; 2.x is ✗."""
    from bot.doctor.prefect_checks import PrefectTarget, check_prefect
    from bot.doctor.report import Status
    from bot.settings import load_settings

    rows = {r.name: r for r in await check_prefect(load_settings(), PrefectTarget(_server(version).url))}
    if version == PREFECT2:
        assert rows["version"].status is Status.FAIL
        assert rows["version"].detail == f"this is Prefect {PREFECT2}; the bot needs a Prefect 3 server"
        assert "Prefect 3" in rows["version"].fix and "events" not in rows
        return
    assert (rows["version"].status, rows["version"].detail) == (Status.OK, "Prefect 3.4.25")
    features = rows["features"]
    assert features.status is Status.WARN
    assert "work pool concurrency status (`prefect work-pool slots`) (since 3.6.23)" in features.detail
    assert features.fix == "upgrade the server to Prefect 3.6.23 or later to have them all"


def test_prefect_2_in_slack_home_tab_and_healthz(fresh_slack, tmp_path):
    """Built as `serve` builds it, pointed at a Prefect 2 server: the thread, the Home tab and
    /healthz?detail=1 each carry the one line, and nothing else about the server."""
    import json
    import time
    import urllib.request

    from bot.embedded_prefect import use_api_url
    from tests.harness import BotHarness, mention

    line = f"this is Prefect {PREFECT2}; the bot needs a Prefect 3 server"
    original = os.environ["PREFECT_API_URL"]
    use_api_url(_server(PREFECT2).url)  # this worker's client settings, put back below
    bot = BotHarness(fresh_slack, None, f"sqlite:///{tmp_path / 'bot.db'}",
                     bot_metrics_token="metrics-token-123456").start()
    try:
        assert bot.post_event(mention("show limits", ts="1700000200.000100")).status == 200
        bot.wait_idle()
        said = "\n".join(fresh_slack.bot_texts("C1", "1700000200.000100"))
        assert line.lower() in said.lower() and "Traceback" not in said, said

        event = {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
                 "event_ts": f"{time.time():.6f}"}
        assert bot.post_event(event).status == 200
        view = json.dumps(fresh_slack.wait_for("views.publish", 1, timeout=60)[-1].args["view"])
        assert line in view, view

        request = urllib.request.Request(f"{bot.url}/healthz?detail=1",
                                         headers={"Authorization": "Bearer metrics-token-123456"})
        with urllib.request.urlopen(request, timeout=10) as response:
            detail = json.loads(response.read())
        assert detail["prefect"]["supported"] is False and detail["prefect"]["problem"] == line
    finally:
        bot.stop()
        use_api_url(original)


async def test_a_change_the_server_cannot_make_is_refused_before_approval(tmp_path):
    """3.4 has no deployment grace periods: the proposal is refused with the reason; without it, it stands."""
    from bot.approvals.service import ApprovalService, ProposalRefused
    from tests.approvals_support import make_service

    server = _server("3.4.25")
    await (await _client("3.4.25")).__aexit__(None, None, None)  # seeded once: demo-reports/hourly exists
    base = make_service(f"sqlite:///{tmp_path / 'bot.db'}")
    service = ApprovalService(base.store, base.policy, client_factory=lambda: PrefectClient(api=server.url))
    with pytest.raises(ProposalRefused) as refused:
        await service.create_proposal(DeploymentLimitChange(action="set", deployment="demo-reports/hourly", limit=3,
                                                            grace_period_seconds=120), requester="U1")
    assert str(refused.value) == ("your server, 3.4.25, has no grace periods on deployment limits: upgrade to "
                                  "Prefect 3.6.6, or set the deployment limit without a grace period")
    proposal = await service.create_proposal(
        DeploymentLimitChange(action="set", deployment="demo-reports/hourly", limit=3), requester="U1")
    assert "limit" in proposal.diff


def test_an_offline_answer_on_an_older_server_says_so_and_gives_the_form_that_works(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "home"),
               PREFECT_API_URL=_server("3.4.25").url)
    done = subprocess.run([sys.executable, "-m", "bot.cli", "ask", "the pool is full and runs stay Scheduled"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    said = " ".join(done.stdout.split())
    assert "prefect work-pool slots needs Prefect 3.6.23 and your server is 3.4.25" in said, said  # rendered
    assert "prefect flow-run ls --state Pending --state Running" in said, said


"""`concurrency-bot demo` (issue 17): seeds a realistic situation on the real Prefect server, the
read commands and three offline questions work on it, and `demo --clean` leaves the server as it was.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

from bot.prefect_ops.demo_world import DEMO_QUESTIONS
from bot.prefect_ops.limits import read_all_deployments, read_all_gcls
from bot.prefect_ops.runs import paged

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(data), PYTHONPATH=str(REPO), COLUMNS="100", PREFECT_HOME=str(data / "home"))
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=data, capture_output=True,
                          text=True, timeout=240)


async def _snapshot() -> dict:
    """What a demo could touch: pools, queues, flows, deployments, limits (with their slots), demo runs."""
    async with get_client() as client:
        pools = await paged(lambda limit, offset: client.read_work_pools(limit=limit, offset=offset))
        queues = await paged(lambda limit, offset: client.read_work_queues(limit=limit, offset=offset))
        flows = await client.read_flows(limit=200)
        deployments = await read_all_deployments(client)
        gcls = await read_all_gcls(client)
        demo_runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="demo-")))
    return {"pools": sorted((p.name, p.concurrency_limit) for p in pools),
            "queues": sorted((q.work_pool_name, q.name, q.is_paused) for q in queues),
            "flows": sorted(f.name for f in flows), "deployments": sorted(str(d.id) for d in deployments),
            "gcls": sorted((g.name, g.limit, g.active_slots) for g in gcls),
            "demo_runs": sorted(r.name for r in demo_runs)}


async def _state(run_name: str) -> tuple[str, str]:
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
    return runs[0].state.type.value, runs[0].state.name


async def test_demo_then_reads_and_questions_then_clean_leaves_the_server_as_it_was(prefect_api_url, tmp_path):
    before = await _snapshot()

    refused = await asyncio.to_thread(_cli, tmp_path, "demo")  # a configured server needs --yes
    assert refused.returncode == 2 and "add --yes" in refused.stdout
    assert await _snapshot() == before

    seeded = await asyncio.to_thread(_cli, tmp_path, "demo", "--yes")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr[-2000:]
    for question in DEMO_QUESTIONS:
        assert question in seeded.stdout
    assert await _state("demo-nightly-1") == ("RUNNING", "Running")
    assert await _state("demo-nightly-2") == ("SCHEDULED", "AwaitingConcurrencySlot")
    assert (await _state("demo-backfill-1"))[1] == "Late"
    again = await asyncio.to_thread(_cli, tmp_path, "demo", "--yes")
    assert again.returncode == 1 and "already seeded" in again.stdout

    limits = await asyncio.to_thread(_cli, tmp_path, "limits")
    assert limits.returncode == 0, limits.stderr[-2000:]
    rows = {line.split("│")[2].strip(): line for line in limits.stdout.splitlines() if line.count("│") > 3}
    assert "demo-etl/nightly" in rows and "demo-reports" in rows and "demo-github-api" in rows
    assert "demo-db" in rows and "paused" in rows["demo-etl/demo-backfill"]

    diagnosed = await asyncio.to_thread(_cli, tmp_path, "diagnose", "demo-nightly-2")
    assert diagnosed.returncode == 0, diagnosed.stderr[-2000:]
    assert "[BLOCKING] deployment_limit" in diagnosed.stdout and "demo-nightly-1" in diagnosed.stdout

    answers = [await asyncio.to_thread(_cli, tmp_path, "ask", question) for question in DEMO_QUESTIONS]
    assert all(a.returncode == 0 for a in answers), [a.stderr[-1000:] for a in answers]
    shown, why, cap = (" ".join(a.stdout.replace("`", "").split()) for a in answers)
    assert "demo-reports" in shown and "demo-etl/nightly" in shown and "demo-github-api" in shown
    assert "demo-nightly-2" in why and "Checks made" in why and "demo-nightly-1" in why
    assert "work pool demo-reports: limit 1 → 2" in cap and "approver" in cap

    cleaned = await asyncio.to_thread(_cli, tmp_path, "demo", "--clean", "--yes")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr[-2000:]
    assert await _snapshot() == before
    assert not (tmp_path / "demo.json").exists()

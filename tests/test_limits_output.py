"""`limits` and `diagnose` never cut names (issue 17): piped, at 80 columns, every name is whole;
in a narrow terminal long names wrap inside their cell; `--json` gives scripts every field.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from rich.console import Console

from bot.commands import limits as limits_command
from bot.prefect_ops.models import ConcurrencyMap, LimitStatus

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


def _long(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex}-"
    return (name + "x" * 60)[:60]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), COLUMNS="80", PREFECT_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)


async def test_limits_piped_shows_every_60_char_name_whole_and_json(prefect_api_url, tmp_path):
    pools = [_long("pool"), _long("pool")]
    gcl = _long("gcl")
    async with get_client() as client:
        for pool in pools:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=3))
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=2))
        flow_id = await client.create_flow_from_name(_long("flow")[:30])
        dep_id = await client.create_deployment(flow_id, _long("dep")[:40], work_pool_name=pools[0])
        run = await client.create_flow_run_from_deployment(dep_id, name=_long("run"))

    piped = _cli(tmp_path, "limits")
    assert piped.returncode == 0, piped.stderr[-2000:]
    lines = piped.stdout.splitlines()
    for name in [*pools, gcl]:
        assert [line for line in lines if name in line], f"{name} is not whole on any line"  # `limits | grep`
    assert "…" not in piped.stdout

    as_json = _cli(tmp_path, "limits", "--json", "--kind", "work_pool")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads(as_json.stdout)["limits"]}
    assert rows[pools[0]]["limit"] == 3 and rows[pools[0]]["kind"] == "work_pool"

    diagnosed = _cli(tmp_path, "diagnose", run.name)
    assert diagnosed.returncode == 0, diagnosed.stderr[-2000:]
    assert [line for line in diagnosed.stdout.splitlines() if run.name in line]
    diagnosed_json = _cli(tmp_path, "diagnose", "--json", run.name)
    data = json.loads(diagnosed_json.stdout)
    assert data["run_name"] == run.name and data["findings"]


def test_a_narrow_terminal_wraps_long_names_instead_of_cutting_them():
    names = [_long("pool"), _long("queue")]
    cmap = ConcurrencyMap(api_url="http://x/api", read_at=datetime.now(UTC), limits=[
        LimitStatus(kind="work_pool", name=names[0], limit=5, active_slots=1),
        LimitStatus(kind="global", name=names[1], limit=2, active_slots=0)])
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    console.print(limits_command.render(cmap))
    text = out.getvalue()
    assert "…" not in text
    assert "Notes" in text and all(len(line) <= 80 for line in text.splitlines())  # no column cropped off
    column = "".join(line.split("│")[2].strip() for line in text.splitlines() if line.count("│") >= 3)
    for name in names:
        assert name in column  # every character is there, wrapped over lines of the Name cell

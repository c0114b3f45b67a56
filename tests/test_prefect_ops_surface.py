"""The public surface: errors from a dead server, the model tools' schemas and results, commands."""

from __future__ import annotations

import argparse
import io
import uuid

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from rich.console import Console

import bot.prefect_ops as ops
from bot.agent.registry import ToolRegistry
from bot.commands import diagnose as diagnose_command
from bot.commands import limits as limits_command
from bot.prefect_ops import PrefectUnavailable, concurrency_map
from bot.prefect_ops.tools import PREFECT_READ_TOOLS
from tests.fakes.prefect_server import free_port


def test_public_surface_is_pinned():
    for name in (
        "concurrency_map",
        "diagnose_run",
        "find_leaked_slots",
        "resolve_name",
        "read_limit",
        "NotFound",
        "PrefectUnavailable",
        "PrefectOpsError",
        "ConcurrencyMap",
        "Diagnosis",
    ):
        assert name in ops.__all__ and hasattr(ops, name)


async def test_dead_server_is_a_clear_unavailable_error():
    url = f"http://127.0.0.1:{free_port()}/api"
    async with PrefectClient(api=url) as client:
        with pytest.raises(PrefectUnavailable) as caught:
            await concurrency_map(client)
    assert url in str(caught.value) and "cannot reach" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_tools_register_with_descriptions_and_no_client_parameter():
    registry = ToolRegistry()
    for func in PREFECT_READ_TOOLS:
        registry.add(func)
    names = set(registry.tools)
    assert {
        "list_concurrency_limits",
        "inspect_limit",
        "diagnose_run",
        "find_leaked_slots",
        "resolve_name",
        "list_global_concurrency_limits",
        "list_tag_limits",
        "list_work_pools",
        "read_deployment_limit",
    } <= names
    for tool in registry.tools.values():
        params = tool.schema()["function"]["parameters"]
        assert "client" not in params.get("properties", {})
        assert "Use it" in tool.description
    kind = registry.get("inspect_limit").schema()["function"]["parameters"]["properties"]["kind"]
    assert set(kind["enum"]) == {"global", "tag", "deployment", "work_pool", "work_queue"}


async def test_tools_answer_compactly_through_the_registry(prefect_server):
    from prefect import get_client

    name = f"surface-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=3))
    registry = ToolRegistry()
    for func in PREFECT_READ_TOOLS:
        registry.add(func)
    rows = await registry.get("list_concurrency_limits").call({"kind": "global"})
    assert {"kind": "global", "name": name, "limit": 3, "active_slots": 0} in rows
    detail = await registry.get("inspect_limit").call({"kind": "global", "name": name.upper()})
    assert detail["name"] == name and detail["holders"] == []
    with pytest.raises(ops.NotFound, match="no deployment named"):
        await registry.get("read_deployment_limit").call({"deployment": f"missing-{uuid.uuid4().hex}"})


async def test_commands_print_the_map_and_fail_cleanly(prefect_server):
    from prefect import get_client

    pool = f"cmd-pool-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=4))
    out = io.StringIO()
    console = Console(file=out, width=200)
    # commands run their own event loop, so they run in a thread here
    import asyncio

    rc = await asyncio.to_thread(limits_command.run, argparse.Namespace(kind=["work_pool"], busy=False), console)
    assert rc == 0 and pool in out.getvalue()
    out.truncate(0)
    missing = f"missing-{uuid.uuid4().hex[:6]}"
    rc = await asyncio.to_thread(diagnose_command.run, argparse.Namespace(target=missing), console)
    assert rc == 1 and f"no flow run or deployment named `{missing}`" in out.getvalue()
    assert "Traceback" not in out.getvalue()

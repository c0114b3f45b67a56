"""Small Prefect situations several test modules build on the real server."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.states import Pending, Running


async def run_waiting_on_deployment_limit(client: Any, names: dict[str, str]) -> UUID:
    """Deployment `names['dep']` (limit 1, ENQUEUE) in pool `names['pool']`: `<run>-1` holds the slot and
    `<run>-2` waits for it. Returns the flow id; sets `names['deployment']` to `flow/deployment`."""
    await client.create_work_pool(WorkPoolCreate(name=names["pool"], type="process"))
    flow_id = await client.create_flow_from_name(names["flow"])
    dep_id = await client.create_deployment(
        flow_id, names["dep"], work_pool_name=names["pool"], concurrency_limit=1,
        concurrency_options=ConcurrencyOptions(collision_strategy="ENQUEUE"))
    first = await client.create_flow_run_from_deployment(dep_id, name=f"{names['run']}-1")
    await client.set_flow_run_state(first.id, Pending())
    await client.set_flow_run_state(first.id, Running())
    second = await client.create_flow_run_from_deployment(dep_id, name=f"{names['run']}-2")
    await client.set_flow_run_state(second.id, Pending())  # the limit is full: it waits for a slot
    names["deployment"] = f"{names['flow']}/{names['dep']}"
    return flow_id

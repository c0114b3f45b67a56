"""The few Prefect objects the per-answer questions look at: a serial deployment and a Late run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel


class Seeded(BaseModel):
    deployment: str  # "flow/deployment"
    late_run: str


async def seed_lookup_targets(api_url: str) -> Seeded:
    from prefect.client.orchestration import PrefectClient
    from prefect.states import Scheduled

    suffix = uuid.uuid4().hex[:6]
    async with PrefectClient(api=api_url) as client:
        flow_id = await client.create_flow_from_name(f"bench-etl-{suffix}")
        deployment_id = await client.create_deployment(flow_id=flow_id, name="nightly", concurrency_limit=1)
        past = datetime.now(UTC) - timedelta(minutes=20)
        run = await client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=past))
    return Seeded(deployment=f"bench-etl-{suffix}/nightly", late_run=run.name)

"""The map and `inspect` say "leaked" where the watcher does (issue 24): a tag limit counting a slot that no
task run holds reads "1/1 (FULL, 1 leaked: counted with no holder)", not just "1/1 (FULL)"."""

from __future__ import annotations

import uuid

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

from bot.offline import render
from bot.prefect_ops.concurrency_map import concurrency_map
from bot.prefect_ops.limits import read_limit


async def test_a_counted_tag_slot_with_no_holder_is_called_leaked(prefect_api_url):
    tag = f"leakmap-{uuid.uuid4().hex[:8]}"
    quiet = f"quietmap-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        await client.create_concurrency_limit(tag=quiet, concurrency_limit=1)
        # A slot counted with no lease behind it: what Prefect's own tag reset leaves in 3.9.1.
        await client.update_global_concurrency_limit(f"tag:{tag}", GlobalConcurrencyLimitUpdate(active_slots=1))
        table = render.limits_table(await concurrency_map(client))
        detail = render.limit_detail(await read_limit(client, "tag", tag))
    line = next(row for row in table.splitlines() if f"`{tag}`" in row)
    assert "1/1 (FULL, 1 leaked: counted with no holder)" in line
    assert "1 leaked: counted with no holder" in detail
    assert "leaked" not in next(row for row in table.splitlines() if f"`{quiet}`" in row)

"""The concurrency map: every limit of every kind with its occupancy, in one call.

The GCL table is read once and shared by the three kinds stored in it (plain, tag, deployment);
the kinds are then read side by side.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect.client.orchestration import PrefectClient

from bot.prefect_ops.errors import api_url_of, at_boundary
from bot.prefect_ops.limits import (
    list_deployment_limits,
    list_global_limits,
    list_pool_and_queue_limits,
    list_tag_limits,
    read_all_gcls,
)
from bot.prefect_ops.models import LIMIT_KINDS, ConcurrencyMap, LimitKind, LimitStatus
from bot.prefect_ops.runs import utcnow
from bot.prefect_ops.together import gather_reads


async def _nothing() -> list[LimitStatus]:
    return []


@at_boundary
async def concurrency_map(client: PrefectClient, kinds: Iterable[LimitKind] | None = None) -> ConcurrencyMap:
    """Read all limits (or only `kinds`) with live slots, holders and waiting runs."""
    wanted = set(kinds or LIMIT_KINDS)
    read_at = utcnow()
    gcls = await read_all_gcls(client) if wanted & {"global", "tag", "deployment"} else []
    pools_and_queues = list_pool_and_queue_limits(client) if wanted & {"work_pool", "work_queue"} else None
    plain, tags, deployments, pq = await gather_reads(
        list_global_limits(client, gcls) if "global" in wanted else _nothing(),
        list_tag_limits(client, gcls) if "tag" in wanted else _nothing(),
        list_deployment_limits(client, gcls) if "deployment" in wanted else _nothing(),
        pools_and_queues if pools_and_queues is not None else _pair(),
    )
    pools, queues = pq
    limits = [*plain, *tags, *deployments,
              *(pools if "work_pool" in wanted else []), *(queues if "work_queue" in wanted else [])]
    return ConcurrencyMap(read_at=read_at, api_url=api_url_of(client), limits=limits)


async def _pair() -> tuple[list[LimitStatus], list[LimitStatus]]:
    return [], []

"""Who holds a plain global concurrency limit, read from Prefect's acquired/released events.

Prefect's API counts GCL slots but does not list holders. `concurrency()` emits
`prefect.concurrency-limit.acquired` and `.released` events carrying the flow or task run it ran
in, so a run with more acquired than released slots still holds them. Events arrive a few seconds
late and only runs inside a flow or task are named; code outside runs stays anonymous.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

from bot.prefect_ops.models import Holder
from bot.prefect_ops.runs import chunks, holders_for, utcnow

ACQUIRED = "prefect.concurrency-limit.acquired"
RELEASED = "prefect.concurrency-limit.released"
EVENTS_PAGE = 50  # the server's interactive page size cap
LIMIT_RESOURCE = "prefect.concurrency-limit."


def _holder_ref(related: list) -> tuple[str, UUID] | None:
    """The innermost run an event was emitted from: a task run if any, else the flow run."""
    found: dict[str, UUID] = {}
    for resource in related:
        role = resource.get("prefect.resource.role")
        rid = resource.get("prefect.resource.id", "")
        if role in ("task-run", "flow-run"):
            try:
                found[role] = UUID(rid.rsplit(".", 1)[-1])
            except ValueError:
                continue
    if "task-run" in found:
        return "task_run", found["task-run"]
    if "flow-run" in found:
        return "flow_run", found["flow-run"]
    return None


async def gcl_holders(
    client: PrefectClient, limit_ids: list[UUID], window: timedelta = timedelta(days=1)
) -> dict[UUID, list[Holder]]:
    """Holders per GCL id: runs whose acquired slots exceed their released ones in the window."""
    if not limit_ids:
        return {}
    net: dict[UUID, dict[tuple[str, UUID], int]] = defaultdict(lambda: defaultdict(int))
    for chunk in chunks(limit_ids, 50):
        event_filter = EventFilter(
            occurred=EventOccurredFilter(since=utcnow() - window, until=utcnow() + timedelta(minutes=1)),
            event=EventNameFilter(name=[ACQUIRED, RELEASED]),
            resource=EventResourceFilter(id=[f"{LIMIT_RESOURCE}{lid}" for lid in chunk]),
        )
        page = await client.read_events(filter=event_filter, limit=EVENTS_PAGE)
        while page is not None:
            for event in page.events:
                ref = _holder_ref([dict(r) for r in event.related])
                if ref is None:
                    continue
                limit_id = UUID(event.resource.id.removeprefix(LIMIT_RESOURCE))
                slots = int(event.resource.get("slots-acquired", "1") or 1)
                net[limit_id][ref] += slots if event.event == ACQUIRED else -slots
            page = await page.get_next_page(client) if page.next_page else None
    refs = {ref for per_limit in net.values() for ref, count in per_limit.items() if count > 0}
    runs = await holders_for(client, refs)
    return {
        limit_id: [runs[ref[1]] for ref, count in per_limit.items() if count > 0]
        for limit_id, per_limit in net.items()
    }

"""A realistic concurrency situation to try the bot on, seeded through the Prefect API, and removed again.

What `seed` creates (every object named `demo-…`), so "show limits", a diagnosis and a change
request all have something real to work on:

- deployment `demo-etl/nightly` limited to 1 run (ENQUEUE): run `demo-nightly-1` is Running and
  holds the slot, `demo-nightly-2` waits in AwaitingConcurrencySlot;
- work pool `demo-reports` limited to 1: `demo-report-1` is Running, two more runs wait Scheduled;
- queue `demo-backfill` in pool `demo-etl` is paused, with two Late runs;
- tag limit `demo-db` (limit 1) whose one slot is taken by no run: a leaked slot;
- rate limit `demo-github-api` (10, decaying 2 slots/s).

No worker runs anything: the states are set through the API, which is exactly how the server
sees real runs. `seed` returns a record of every id it created; `clean` deletes exactly those.

It seeds every Prefect 3 release: flows, deployments and runs are created with only the fields
each of them accepts (the pinned client adds `labels`, which 3.0 refuses), and before 3.4.19,
where tag limits are v1 concurrency limits with no `tag:` global limit behind them, the leaked
tag slot is made through the v1 API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.exceptions import ObjectNotFound
from prefect.states import Late, Pending, Running, Scheduled

from bot.prefect_ops import by_name
from bot.prefect_ops.capabilities import ensure_supported

__all__ = ["DEMO_QUESTIONS", "DemoExists", "seed", "clean", "names_in_use"]

POOLS = ("demo-etl", "demo-reports")
QUEUE = "demo-backfill"
FLOWS = ("demo-etl", "demo-reports", "demo-backfill")
TAG = "demo-db"
RATE_LIMIT = "demo-github-api"
DEMO_QUESTIONS = (
    "show limits",
    "why is demo-nightly-2 stuck?",
    "cap the demo-reports pool at 2",
)


class DemoExists(RuntimeError):
    """Objects with the demo's names are already on the server: seeding would mix with them."""


async def names_in_use(client: Any) -> list[str]:
    """Demo names already taken on the server (pools, flows, global limits)."""
    taken = []
    for pool in POOLS:
        try:
            await by_name.read_work_pool(client, pool)
            taken.append(f"work pool {pool}")
        except ObjectNotFound:
            pass
    flows = await client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS))))
    taken += [f"flow {flow.name}" for flow in flows]
    for gcl in (f"tag:{TAG}", RATE_LIMIT):
        try:
            await by_name.read_gcl_by_name(client, gcl)
            taken.append(f"global limit {gcl}")
        except ObjectNotFound:
            pass
    if not any(t.endswith(f"tag:{TAG}") for t in taken):
        try:
            await by_name.read_concurrency_limit_by_tag(client, TAG)
            taken.append(f"tag limit {TAG}")
        except ObjectNotFound:
            pass
    return taken


async def _post(client: Any, path: str, body: dict[str, Any]) -> str:
    """Create through the API with only the fields every 3.x server accepts; returns the new id."""
    response = await client._client.post(path, json=body)
    return str(response.json()["id"])


async def _deployment(client: Any, record: dict, flow: str, name: str, pool: str, queue: str | None = None,
                      **options: Any) -> Any:
    flow_id = await _post(client, "/flows/", {"name": flow})
    record["flows"].append(flow_id)
    # No parameters: an enforced schema with none declared makes every run request a 409.
    body: dict[str, Any] = {"name": name, "flow_id": flow_id, "work_pool_name": pool,
                            "enforce_parameter_schema": False}
    if queue:
        body["work_queue_name"] = queue
    body.update(options)
    dep_id = await _post(client, "/deployments/", body)
    record["deployments"].append(dep_id)
    return dep_id


async def _create_run(client: Any, record: dict, dep_id: str, name: str) -> Any:
    run_id = await _post(client, f"/deployments/{dep_id}/create_flow_run", {"name": name})
    record["flow_runs"].append(run_id)
    return run_id


async def _run(client: Any, record: dict, dep_id: Any, name: str, *states: Any) -> Any:
    run_id = await _create_run(client, record, dep_id, name)
    for state in states:  # not forced: the server's rules run (a Pending run takes its deployment slot)
        await client.set_flow_run_state(UUID(run_id), state)
    return run_id


async def seed(client: Any) -> dict[str, list[str]]:
    """Create the demo situation; returns the ids created, for `clean`. Raises DemoExists."""
    caps = await ensure_supported(client)  # a Prefect 2 server is refused in one line, before any write
    taken = await names_in_use(client)
    if taken:
        raise DemoExists(", ".join(taken))
    record: dict[str, list[str]] = {"work_pools": [], "flows": [], "deployments": [], "flow_runs": [], "gcls": [],
                                    "tag_limits": []}
    try:
        await _seed(client, record, tags_as_global=caps.has("tag_limits_as_global"))
    except BaseException:
        await clean(client, record)  # leave nothing half-made behind
        raise
    return record


async def _seed(client: Any, record: dict[str, list[str]], tags_as_global: bool = True) -> None:
    for pool, limit in zip(POOLS, (None, 1), strict=True):
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=limit))
        record["work_pools"].append(pool)
    past = datetime.now(UTC) - timedelta(minutes=20)

    # 1. A deployment limit of 1: one run holds the slot, the next waits in AwaitingConcurrencySlot.
    options = ConcurrencyOptions(collision_strategy="ENQUEUE").model_dump(mode="json", exclude_unset=True)
    nightly = await _deployment(client, record, "demo-etl", "nightly", "demo-etl", concurrency_limit=1,
                                concurrency_options=options)
    await _run(client, record, nightly, "demo-nightly-1", Pending(), Running())
    waiting = await _create_run(client, record, nightly, "demo-nightly-2")
    await client.set_flow_run_state(UUID(waiting), Pending())  # the limit is full: the server sends it to wait

    # 2. A full work pool: one run in it, two more waiting to be picked up.
    hourly = await _deployment(client, record, "demo-reports", "hourly", "demo-reports")
    await _run(client, record, hourly, "demo-report-1", Pending(), Running())
    for i in (2, 3):
        await _run(client, record, hourly, f"demo-report-{i}", Scheduled(scheduled_time=past))

    # 3. A paused queue with Late runs.
    await client.create_work_queue(name=QUEUE, work_pool_name="demo-etl", is_paused=True)
    backfill = await _deployment(client, record, "demo-backfill", "backfill", "demo-etl", queue=QUEUE)
    for i in (1, 2):
        await _run(client, record, backfill, f"demo-backfill-{i}", Late(scheduled_time=past))

    # 4. A tag limit whose only slot is held by no run (a worker died mid-task): leaked.
    await client.create_concurrency_limit(tag=TAG, concurrency_limit=1)
    if tags_as_global:
        tag_limit = await by_name.read_gcl_by_name(client, f"tag:{TAG}")
        record["gcls"].append(tag_limit.name)
        await by_name.update_gcl(client, tag_limit.name, {"active_slots": 1})
    else:  # before 3.4.19 the v1 limit is the only record: its slot list names a task run that is not there
        record["tag_limits"].append(TAG)
        await client.reset_concurrency_limit_by_tag(TAG, slot_override=[uuid4()])

    # 5. A rate limit: bursts of 10, refilled at 2 slots per second.
    await client.create_global_concurrency_limit(
        GlobalConcurrencyLimitCreate(name=RATE_LIMIT, limit=10, slot_decay_per_second=2.0))
    record["gcls"].append(RATE_LIMIT)


async def clean(client: Any, record: dict[str, list[str]]) -> list[str]:
    """Delete exactly what `seed` recorded (runs, deployments, flows, pools, limits); returns what failed."""
    failed: list[str] = []

    async def attempt(what: str, call: Any) -> None:
        try:
            await call
        except ObjectNotFound:
            pass  # already gone
        except Exception as exc:  # keep going: remove as much as possible, then report
            failed.append(f"{what}: {type(exc).__name__}")

    for run_id in record.get("flow_runs", []):
        await attempt(f"flow run {run_id}", client.delete_flow_run(UUID(run_id)))
    for dep_id in record.get("deployments", []):
        await attempt(f"deployment {dep_id}", client.delete_deployment(UUID(dep_id)))
    for flow_id in record.get("flows", []):
        await attempt(f"flow {flow_id}", client.delete_flow(UUID(flow_id)))
    for name in record.get("gcls", []):
        await attempt(f"global limit {name}", by_name.delete_gcl_by_name(client, name))
    for tag in record.get("tag_limits", []):
        await attempt(f"tag limit {tag}", client.delete_concurrency_limit_by_tag(tag))
    for pool in record.get("work_pools", []):
        await attempt(f"work pool {pool}", by_name.delete_work_pool(client, pool))
    return failed

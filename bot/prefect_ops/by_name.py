"""Reads that address one object by its name, with the name percent-encoded into the path.

Prefect's client formats names into paths raw (`/work_pools/{name}`), so a pool named `team?a`
turns into a request for `team` with a query string (HTTP 405), and a newline raises
`httpx.InvalidURL`. Every read of one named object goes through here instead: the same endpoint
and the same response model as the client method it replaces, the path built by `names.api_path`.
A 404 raises Prefect's own `ObjectNotFound`, so callers keep their existing handling.
"""

from __future__ import annotations

from typing import Any

from httpx import HTTPStatusError
from prefect.client.schemas.objects import ConcurrencyLimit, Worker, WorkPool, WorkQueue
from prefect.client.schemas.responses import (
    DeploymentResponse,
    GlobalConcurrencyLimitResponse,
    WorkPoolConcurrencyStatus,
)
from prefect.exceptions import ObjectNotFound

from bot.prefect_ops.names import api_path

__all__ = [
    "delete_gcl_by_name", "delete_work_pool", "update_gcl",
    "read_concurrency_limit_by_tag", "read_deployment_by_name", "read_gcl_by_name", "read_work_pool",
    "read_work_pool_concurrency_status", "read_work_queue_by_name", "read_workers_for_work_pool",
]


async def _request(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = await client.request(method, path, **kwargs)
    except HTTPStatusError as exc:
        if exc.response.status_code == 404:
            raise ObjectNotFound(http_exc=exc) from exc
        raise
    return response.json()


async def read_work_pool(client: Any, name: str) -> WorkPool:
    """By the list filter (the name rides in the body): Prefect cannot route every name it accepts
    (a newline gives its router a 404), but it can always filter on it."""
    body = {"work_pools": {"name": {"any_": [name]}}, "limit": 1}
    found = await _request(client, "POST", api_path("work_pools", "filter"), json=body)
    match = [WorkPool.model_validate(p) for p in found if p.get("name") == name]
    if not match:
        raise ObjectNotFound(http_exc=LookupError(name), help_message=f"work pool {name!r} not found")
    return match[0]


async def read_workers_for_work_pool(client: Any, name: str, limit: int | None = None) -> list[Worker]:
    body = {"workers": None, "offset": None, "limit": limit}
    found = await _request(client, "POST", api_path("work_pools", name, "workers", "filter"), json=body)
    return [Worker.model_validate(w) for w in found]


async def read_work_pool_concurrency_status(
    client: Any, name: str, page: int = 1, limit: int | None = None, flow_run_limit: int = 10
) -> WorkPoolConcurrencyStatus:
    body: dict[str, Any] = {"page": page, "flow_run_limit": flow_run_limit}
    if limit is not None:
        body["limit"] = limit
    found = await _request(client, "POST", api_path("work_pools", name, "concurrency_status"), json=body)
    return WorkPoolConcurrencyStatus.model_validate(found)


async def read_work_queue_by_name(client: Any, pool: str, queue: str) -> WorkQueue:
    found = await _request(client, "GET", api_path("work_pools", pool, "queues", queue))
    return WorkQueue.model_validate(found)


async def read_concurrency_limit_by_tag(client: Any, tag: str) -> ConcurrencyLimit:
    return ConcurrencyLimit.model_validate(await _request(client, "GET", api_path("concurrency_limits", "tag", tag)))


async def read_gcl_by_name(client: Any, name: str) -> GlobalConcurrencyLimitResponse:
    found = await _request(client, "GET", api_path("v2", "concurrency_limits", name))
    return GlobalConcurrencyLimitResponse.model_validate(found)


async def read_deployment_by_name(client: Any, flow: str, deployment: str) -> DeploymentResponse:
    found = await _request(client, "GET", api_path("deployments", "name", flow, deployment))
    return DeploymentResponse.model_validate(found)


async def delete_gcl_by_name(client: Any, name: str) -> None:
    await _request_empty(client, "DELETE", api_path("v2", "concurrency_limits", name))


async def delete_work_pool(client: Any, name: str) -> None:
    await _request_empty(client, "DELETE", api_path("work_pools", name))


async def update_gcl(client: Any, name: str, fields: dict[str, Any]) -> None:
    await _request_empty(client, "PATCH", api_path("v2", "concurrency_limits", name), json=fields)


async def _request_empty(client: Any, method: str, path: str, **kwargs: Any) -> None:
    try:
        await client.request(method, path, **kwargs)
    except HTTPStatusError as exc:
        if exc.response.status_code == 404:
            raise ObjectNotFound(http_exc=exc) from exc
        raise

"""Helpers for the approval tests: uniquely named Prefect objects on the shared server, a store."""

from __future__ import annotations

import uuid

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate

from bot.approvals.policy import ApprovalPolicy
from bot.approvals.service import ApprovalService
from bot.settings import load_settings
from bot.store import Store


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make_pool(limit: int | None = None) -> str:
    name = unique("pool")
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=limit))
    return name


async def pool_limit(name: str) -> int | None:
    async with get_client() as client:
        return (await client.read_work_pool(name)).concurrency_limit


async def make_queue(pool: str, limit: int | None = None) -> str:
    name = unique("queue")
    async with get_client() as client:
        await client.create_work_queue(name=name, work_pool_name=pool, concurrency_limit=limit)
    return name


async def make_deployment(pool: str, limit: int | None = None) -> str:
    flow, dep = unique("flow"), unique("dep")
    async with get_client() as client:
        flow_id = await client.create_flow_from_name(flow)
        await client.create_deployment(flow_id, dep, work_pool_name=pool, concurrency_limit=limit)
    return f"{flow}/{dep}"


async def make_gcl(limit: int = 2, active: bool = True) -> str:
    name = unique("gcl")
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit, active=active))
    return name


def make_service(db_url: str, **settings: object) -> ApprovalService:
    """A service over a store at `db_url`; a second call with the same URL is a 'restart'/replica."""
    values = {"bot_approver_ids": ["UAPPROVER", "UOTHER"], **settings}
    cfg = load_settings(**values)
    return ApprovalService(Store.open(db_url), ApprovalPolicy(cfg), ttl_seconds=cfg.bot_proposal_ttl_seconds)

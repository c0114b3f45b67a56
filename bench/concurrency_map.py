"""Time the concurrency map over 500 limits and 200 deployments on a fresh local Prefect server.

    python -m bench.concurrency_map [--limits 500] [--deployments 200] [--repeat 3]

Starts its own server (tests/fakes/prefect_server.PrefectServer), seeds it, then prints the time
of each `concurrency_map` call. The figure is printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time


async def _gather_bounded(coros, width: int = 16):
    gate = asyncio.Semaphore(width)

    async def run(coro):
        async with gate:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


async def seed(n_limits: int, n_deployments: int, n_pools: int = 10) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate

    n_tags = n_limits // 5
    n_gcls = n_limits - n_tags - n_pools
    async with get_client() as client:
        await _gather_bounded(
            [
                client.create_work_pool(WorkPoolCreate(name=f"bench-pool-{i}", type="process", concurrency_limit=5))
                for i in range(n_pools)
            ]
        )
        await _gather_bounded(
            [
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(
                        name=f"bench-gcl-{i}", limit=1 + i % 7, slot_decay_per_second=0.5 if i % 10 == 0 else 0.0
                    )
                )
                for i in range(n_gcls)
            ]
            + [
                client.create_concurrency_limit(tag=f"bench-tag-{i}", concurrency_limit=1 + i % 3)
                for i in range(n_tags)
            ]
        )
        flow_id = await client.create_flow_from_name("bench-flow")
        await _gather_bounded(
            [
                client.create_deployment(
                    flow_id=flow_id,
                    name=f"bench-dep-{i}",
                    work_pool_name=f"bench-pool-{i % n_pools}",
                    concurrency_limit=1 + i % 3,
                )
                for i in range(n_deployments)
            ]
        )


async def measure(repeat: int) -> list[tuple[float, dict[str, int]]]:
    from prefect import get_client

    from bot.prefect_ops import concurrency_map

    results = []
    async with get_client() as client:
        for _ in range(repeat):
            start = time.perf_counter()
            cmap = await concurrency_map(client)
            results.append((time.perf_counter() - start, cmap.counts()))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=int, default=500)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from tests.fakes.prefect_server import PrefectServer

    server = PrefectServer()
    os.environ["PREFECT_API_URL"] = server.url  # before prefect is imported
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    print(f"starting a Prefect server at {server.url} …", file=sys.stderr, flush=True)
    server.start()
    try:
        started = time.perf_counter()
        asyncio.run(seed(args.limits, args.deployments))
        print(
            f"seeded {args.limits} limits and {args.deployments} deployments in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        for i, (seconds, counts) in enumerate(asyncio.run(measure(args.repeat)), 1):
            total = sum(counts.values())
            print(f"concurrency_map run {i}: {seconds:.3f} s for {total} limits {counts}", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

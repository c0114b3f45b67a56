"""Parallel reads that leave nothing running behind them.

`asyncio.gather` raises the first failure but lets the other calls run on. For a read that is a
call still in flight after the read has failed: after a 429 it reaches Prefect inside the
Retry-After pause the watcher promised, and it spends call budget on an answer nobody reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

__all__ = ["gather_reads"]


async def gather_reads(*calls: Awaitable[Any]) -> list[Any]:
    """The results of `calls`, run at once; on the first failure the rest are cancelled and have
    ended before that failure is raised (as itself, like `asyncio.gather`, not as a group)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

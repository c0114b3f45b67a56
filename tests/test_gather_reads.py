"""A failed parallel read leaves no call running (bot/prefect_ops/together.py): after a 429 the
watcher promises no call inside Retry-After, and a sibling call still in flight would break that."""

from __future__ import annotations

import asyncio

import pytest

from bot.prefect_ops.together import gather_reads


class Refused(Exception):
    pass


async def test_the_first_failure_ends_the_other_calls_before_it_is_raised():
    never = asyncio.Event()
    ended: list[str] = []

    async def slow_sibling() -> str:
        try:
            await never.wait()
            return "late"
        finally:
            ended.append("sibling")

    async def refused() -> str:
        await asyncio.sleep(0)
        raise Refused("429")

    with pytest.raises(Refused, match="429"):  # the failure itself, not a group
        await gather_reads(slow_sibling(), refused())
    assert ended == ["sibling"]


async def test_results_keep_the_order_of_the_calls():
    async def value(v: int) -> int:
        await asyncio.sleep(0)
        return v

    assert await gather_reads(value(3), value(1), value(2)) == [3, 1, 2]
    assert await gather_reads() == []


async def test_cancelling_the_read_cancels_every_call():
    never, both_waiting = asyncio.Event(), asyncio.Event()
    waiting: list[int] = []
    ended: list[int] = []

    async def waits(i: int) -> None:
        waiting.append(i)
        if len(waiting) == 2:
            both_waiting.set()
        try:
            await never.wait()
        finally:
            ended.append(i)

    read = asyncio.ensure_future(gather_reads(waits(1), waits(2)))
    await both_waiting.wait()
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    assert sorted(ended) == [1, 2]
